// Fixture of the layering test: a core header that includes the report
// layer. check_layers.cmake must reject it.
#pragma once

#include "report/report.h"
