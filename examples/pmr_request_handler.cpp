// A request handler whose per-request memory lives in a guarded_resource: the
// parsed request, its headers and the response are std::pmr containers on
// the request's arena, and release() at the end of the request frees all of
// it in one step. An overflow of any of them faults on the faulting
// instruction, with a report naming the block and where it was allocated.
//
//   build/examples/pmr_request_handler         serves three requests, prints stats
//   build/examples/pmr_request_handler --bug   adds a request whose name field is
//                                              longer than the handler's record
//                                              buffer: heap-buffer-overflow
//
// The arena is created once per worker and reset with release() after every
// request, rather than constructed per request: the reservation and the
// fault handler are set up once, and release() costs one mapping call.
#include <cstdio>
#include <cstring>
#include <memory_resource>
#include <string>
#include <string_view>
#include <utility>

#include <string.h>  // strnlen
#include <vector>

#include <guardarena/guardarena.hpp>

namespace {

struct Request {
  explicit Request(std::pmr::memory_resource* mr) : method(mr), path(mr), headers(mr), body(mr) {}
  std::pmr::string method;
  std::pmr::string path;
  std::pmr::vector<std::pair<std::pmr::string, std::pmr::string>> headers;
  std::pmr::string body;

  std::string_view header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

// "METHOD PATH\nName: value\n...\n\nbody" -> Request, all on `mr`.
Request parse(std::string_view raw, std::pmr::memory_resource* mr) {
  Request r(mr);
  std::size_t eol = raw.find('\n');
  std::string_view line = raw.substr(0, eol);
  std::size_t sp = line.find(' ');
  r.method = line.substr(0, sp);
  r.path = line.substr(sp + 1);
  raw.remove_prefix(eol + 1);
  while (!raw.empty() && raw.front() != '\n') {
    eol = raw.find('\n');
    line = raw.substr(0, eol);
    std::size_t colon = line.find(':');
    r.headers.emplace_back(line.substr(0, colon), line.substr(colon + 2));
    raw.remove_prefix(eol == std::string_view::npos ? raw.size() : eol + 1);
  }
  if (!raw.empty()) r.body = raw.substr(1);
  return r;
}

// "name=ada&email=..." -> "ada"
std::string_view form_field(std::string_view body, std::string_view key) {
  for (std::size_t at = 0; at < body.size();) {
    std::size_t amp = body.find('&', at);
    std::string_view pair =
        body.substr(at, amp == std::string_view::npos ? std::string_view::npos : amp - at);
    if (pair.size() > key.size() && pair.substr(0, key.size()) == key && pair[key.size()] == '=')
      return pair.substr(key.size() + 1);
    if (amp == std::string_view::npos) break;
    at = amp + 1;
  }
  return {};
}

// The storage format keeps user names in fixed 32-byte records.
constexpr std::size_t kNameRecord = 32;

// THE BUG: the name is copied without checking it against the record size.
// Names up to 32 bytes are fine; a longer one writes past the record's
// block, which under guarded_resource ends at a guard page.
[[gnu::noinline]] std::pmr::vector<char> make_name_record(std::string_view name,
                                                          std::pmr::memory_resource* mr) {
  std::pmr::vector<char> record(kNameRecord, '\0', mr);
  std::memcpy(record.data(), name.data(), name.size());
  return record;
}

std::pmr::string handle(const Request& req, std::pmr::memory_resource* mr) {
  std::pmr::string response(mr);
  if (req.method == "GET") {
    response = "200 OK\nhello ";
    response += req.header("User-Agent");
    response += ", you asked for ";
    response += req.path;
  } else if (req.method == "POST") {
    std::pmr::vector<char> record = make_name_record(form_field(req.body, "name"), mr);
    response = "201 Created\n";
    response.append(record.data(), ::strnlen(record.data(), record.size()));
    response += " stored";
  } else {
    response = "405 Method Not Allowed";
  }
  return response;
}

}  // namespace

int main(int argc, char** argv) {
  const bool bug = argc > 1 && std::strcmp(argv[1], "--bug") == 0;
  std::vector<const char*> requests = {
      "GET /users/7\nHost: example.test\nUser-Agent: curl/8.5.0 (x86_64-pc-linux-gnu)\n",
      "POST /users\nHost: example.test\nUser-Agent: python-requests/2.31.0\nContent-Type: "
      "text/plain\n\nname=ada&"
      "email=ada@lovelace.org",
      "DELETE /users/7\nHost: example.test\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; "
      "rv:128.0)\n",
  };
  if (bug) {
    requests.push_back(
        "POST /users\nHost: example.test\nUser-Agent: python-requests/2.31.0\n\n"
        "name=Augusta Ada King, Countess of Lovelace&email=ada@lovelace.org");
  }

  // One arena for this worker; each request uses it alone, then releases it.
  guardarena::guarded_resource arena{"quarantine_bytes=16M"};
  int served = 0;
  for (const char* raw : requests) {
    {
      Request req = parse(raw, &arena);
      std::fflush(stdout);
      std::pmr::string response = handle(req, &arena);
      guardarena::arena_stats st = arena.stats();
      std::printf("%s %s -> %.*s\n", req.method.c_str(), req.path.c_str(),
                  static_cast<int>(response.find('\n')), response.c_str());
      std::printf("  arena: %llu live blocks, %llu bytes, backend %s\n",
                  static_cast<unsigned long long>(st.live_blocks),
                  static_cast<unsigned long long>(st.live_bytes), st.backend);
      ++served;
    }  // the containers give their memory back here...
    // ...and release() returns everything the request touched in one step,
    // including anything a handler forgot to free.
    arena.release();
  }
  std::printf("served %d requests\n", served);
  return 0;
}
