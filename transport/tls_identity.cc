#include "transport/tls_identity.h"

#include <openssl/bio.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

namespace cbtd::transport {

absl::StatusOr<std::string> CertificateCommonName(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return absl::InternalError("BIO_new_mem_buf failed");
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) {
    return absl::InvalidArgumentError("not a PEM certificate");
  }
  char cn[256] = {};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()),
                                    NID_commonName, cn, sizeof cn);
  if (n <= 0) {
    return absl::InvalidArgumentError("certificate subject has no CN");
  }
  return std::string(cn, static_cast<size_t>(n));
}

}  // namespace cbtd::transport
