// NTS-KE handshakes per second: ntp-control's NTS-KE server (its own
// thread) on the loopback, and clients (GnuTLS, TLS 1.3, ECDSA P-256
// certificate, X25519 key exchange as GnuTLS negotiates it by default) each
// doing whole exchanges: handshake, request, eight cookies, close. The
// clients share the machine with the server, so on two cores the figure is
// a lower bound of what the server alone sustains; `--clients 1` leaves the
// server a core of its own.
//
//   bench_nts_ke [--clients N] [--seconds S]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <dirent.h>

#include <fstream>
#include <sstream>

#include "control/nts_ke_server.h"
#include "hwclock/tsc.h"
#include "tests/support/tls_client.h"

// CPU seconds (user + system) of this process's thread named `name`.
double thread_cpu_s(const char* name) {
  DIR* d = opendir("/proc/self/task");
  double s = -1;
  while (dirent* e = d ? readdir(d) : nullptr) {
    if (e->d_name[0] == '.') continue;
    const std::string base = std::string("/proc/self/task/") + e->d_name;
    std::string comm;
    std::getline(std::ifstream(base + "/comm"), comm);
    if (comm != name) continue;
    std::string stat;
    std::getline(std::ifstream(base + "/stat"), stat);
    std::istringstream in(stat.substr(stat.rfind(')') + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    s = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  if (d) closedir(d);
  return s;
}

int main(int argc, char** argv) {
  int clients = 1;
  double seconds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--clients")) clients = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
  }
  using namespace ntp;
  char tmpl[] = "/tmp/bench-ntske-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const test::TestCertificate cert = test::make_test_certificate();
  test::write_file(dir + "/cert.pem", cert.cert_pem, 0644);
  test::write_file(dir + "/key.pem", cert.key_pem, 0600);
  auto ring = std::make_shared<crypto::CookieKeyRing>();
  const uint32_t id = 1;
  uint8_t secret[1][crypto::kSivKeyBytes] = {{7}};
  crypto::cookie_ring_init(*ring, &id, secret, 1, 0);

  ctl::NtsKeServer server;
  ctl::NtsKeOptions o;
  o.listen_ip = 0x7f000001;
  o.listen_port = 0;
  o.max_sessions = 4096;
  o.ntp_server = "10.0.1.31";
  std::string err;
  if (server.start(o, dir + "/cert.pem", dir + "/key.pem", ring, err) != ctl::NtsKeServer::Start::kOk) {
    std::fprintf(stderr, "bench_nts_ke: %s\n", err.c_str());
    return 1;
  }
  const uint16_t port = server.bound_port();
  std::vector<std::thread> threads;
  std::vector<uint64_t> done(clients, 0), failed(clients, 0);
  const double t0 = hwclock::monotonic_s();
  const double cpu0 = thread_cpu_s("ntp-nts-ke");
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      while (hwclock::monotonic_s() - t0 < seconds) {
        const test::KeResult r = test::nts_ke_exchange(port, cert.cert_pem);
        (r.handshake ? done : failed)[c]++;
      }
    });
  for (auto& t : threads) t.join();
  const double elapsed = hwclock::monotonic_s() - t0;
  uint64_t ok = 0, bad = 0;
  for (int c = 0; c < clients; ++c) {
    ok += done[c];
    bad += failed[c];
  }
  const double server_cpu_s = thread_cpu_s("ntp-nts-ke") - cpu0;
  const ctl::NtsKeCounters k = server.counters();
  server.stop();
  std::system(("rm -rf " + dir).c_str());
  std::printf("clients %d, %.1f s: %llu exchanges (%.0f per second), %llu failed; server: %llu served, %llu cookies, "
              "%llu refused, %llu TLS failures\n",
              clients, elapsed, static_cast<unsigned long long>(ok), ok / elapsed, static_cast<unsigned long long>(bad),
              static_cast<unsigned long long>(k.served), static_cast<unsigned long long>(k.cookies),
              static_cast<unsigned long long>(k.refused), static_cast<unsigned long long>(k.handshake_failures));
  if (server_cpu_s > 0 && ok > 0)
    std::printf("server thread: %.2f CPU s, %.0f us per exchange: %.0f exchanges per second per core\n", server_cpu_s,
                server_cpu_s / ok * 1e6, ok / server_cpu_s);
  return bad == 0 && ok > 0 ? 0 : 1;
}
