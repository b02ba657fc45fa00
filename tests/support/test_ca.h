// For tests of TLS clients (the NTS-KE client): a CA of its own name and a
// server certificate it signed, as a real deployment has them, so that a
// client trusting another CA finds the issuer unknown (make_test_certificate
// is self-signed under one fixed name, which every instance shares).
// Made with GnuTLS, ECDSA P-256, valid from an hour ago for a day.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tests/support/tls_client.h"

namespace ntp::test {

namespace detail {

inline gnutls_x509_privkey_t new_p256_key() {
  gnutls_x509_privkey_t key;
  gnutls_x509_privkey_init(&key);
  gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
  return key;
}

inline void start_crt(gnutls_x509_crt_t crt, const std::string& dn, unsigned char serial, gnutls_x509_privkey_t key) {
  gnutls_x509_crt_set_version(crt, 3);
  gnutls_x509_crt_set_serial(crt, &serial, 1);
  const time_t now = time(nullptr);
  gnutls_x509_crt_set_activation_time(crt, now - 3600);
  gnutls_x509_crt_set_expiration_time(crt, now + 86400);
  gnutls_x509_crt_set_dn(crt, dn.c_str(), nullptr);
  gnutls_x509_crt_set_key(crt, key);
}

inline TestCertificate export_pair(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key) {
  TestCertificate out;
  gnutls_datum_t d{};
  gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d);
  out.cert_pem.assign(reinterpret_cast<const char*>(d.data), d.size);
  gnutls_free(d.data);
  gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d);
  out.key_pem.assign(reinterpret_cast<const char*>(d.data), d.size);
  gnutls_free(d.data);
  return out;
}

}  // namespace detail

// A self-signed CA named "CN=<cn>" (basic constraints CA, key usage cert signing).
inline TestCertificate make_test_ca(const std::string& cn) {
  gnutls_x509_privkey_t key = detail::new_p256_key();
  gnutls_x509_crt_t crt;
  gnutls_x509_crt_init(&crt);
  detail::start_crt(crt, "CN=" + cn, 1, key);
  gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
  gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
  gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
  TestCertificate out = detail::export_pair(crt, key);
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  return out;
}

// A server certificate signed by ca for DNS name dns_name (CN and SAN) and,
// unless ip is 0, the IPv4 address ip (host order) as an IP SAN; not a CA.
inline TestCertificate make_test_server_certificate(const TestCertificate& ca, const std::string& dns_name,
                                                    uint32_t ip = 0) {
  gnutls_x509_crt_t ca_crt;
  gnutls_x509_privkey_t ca_key;
  gnutls_x509_crt_init(&ca_crt);
  gnutls_x509_privkey_init(&ca_key);
  gnutls_datum_t c{reinterpret_cast<unsigned char*>(const_cast<char*>(ca.cert_pem.data())),
                   static_cast<unsigned>(ca.cert_pem.size())};
  gnutls_datum_t k{reinterpret_cast<unsigned char*>(const_cast<char*>(ca.key_pem.data())),
                   static_cast<unsigned>(ca.key_pem.size())};
  gnutls_x509_crt_import(ca_crt, &c, GNUTLS_X509_FMT_PEM);
  gnutls_x509_privkey_import(ca_key, &k, GNUTLS_X509_FMT_PEM);

  gnutls_x509_privkey_t key = detail::new_p256_key();
  gnutls_x509_crt_t crt;
  gnutls_x509_crt_init(&crt);
  detail::start_crt(crt, "CN=" + dns_name, 2, key);
  gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, dns_name.data(),
                                       static_cast<unsigned>(dns_name.size()), GNUTLS_FSAN_SET);
  if (ip != 0) {
    const unsigned char a[4] = {static_cast<unsigned char>(ip >> 24), static_cast<unsigned char>(ip >> 16),
                                static_cast<unsigned char>(ip >> 8), static_cast<unsigned char>(ip)};
    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, a, sizeof a, GNUTLS_FSAN_APPEND);
  }
  gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
  gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
  gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
  gnutls_x509_crt_sign2(crt, ca_crt, ca_key, GNUTLS_DIG_SHA256, 0);
  TestCertificate out = detail::export_pair(crt, key);
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  gnutls_x509_crt_deinit(ca_crt);
  gnutls_x509_privkey_deinit(ca_key);
  return out;
}

}  // namespace ntp::test
