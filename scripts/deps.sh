# Sourced by the other scripts: installs the Debian packages guardarena needs,
# only those that are missing, so running it twice does nothing the second time.
GUARDARENA_PACKAGES=(
  build-essential cmake ninja-build clang llvm libgtest-dev libgmock-dev libbenchmark-dev
  libjemalloc-dev electric-fence duma gnuplot-nox python3 python3-matplotlib
  sqlite3 git perl binutils libpython3.11-testsuite pkg-config
)

# The cross compiler and emulator of the arm64 test step (scripts/test-arm64).
GUARDARENA_ARM64_PACKAGES=(g++-aarch64-linux-gnu qemu-user-static googletest)

# Installs those of the named Debian packages that are missing.
guardarena_install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "guardarena: installing missing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

guardarena_install_deps() {
  guardarena_install_packages "${GUARDARENA_PACKAGES[@]}"
}
