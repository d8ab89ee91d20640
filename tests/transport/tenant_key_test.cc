#include "transport/tenant_key.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>

#include "common/fs.h"
#include "tests/common/temp_dir.h"
#include "transport/key_file.h"

namespace cbtd::transport {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr int64_t kCreated = 1777629600;  // 2026-05-01T10:00:00Z

TenantKey NewKey() {
  absl::StatusOr<TenantKey> key = TenantKey::Generate();
  EXPECT_TRUE(key.ok()) << key.status();
  return *key;
}

std::string Slurp(const std::string& path) { return *common::ReadFile(path); }

void Write(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

// --- the key and its derived values -------------------------------------

TEST(TenantKeyTest, GeneratedKeysDifferAndSubkeysAreDistinct) {
  const TenantKey a = NewKey(), b = NewKey();
  EXPECT_FALSE(a == b);
  EXPECT_NE(a.fingerprint(), b.fingerprint());
  EXPECT_NE(a.id_key(), a.data_key());
  EXPECT_NE(a.data_key(), a.meta_key());
  EXPECT_NE(a.id_key(), a.meta_key());
  EXPECT_NE(a.id_key(), a.secret());
  EXPECT_THAT(a.fingerprint(), MatchesRegex("[0-9a-f]{16}"));
}

TEST(TenantKeyTest, FingerprintIsAKnownAnswer) {
  // printf cbtd-key-fingerprint-v1 |
  //   openssl mac -digest SHA256 -macopt hexkey:00..00 HMAC
  const TenantKey::Bytes zero{};
  absl::StatusOr<TenantKey> key = TenantKey::FromSecret(zero);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->fingerprint(), "aed2b2468975f800");
}

TEST(TenantKeyTest, SecretOfTheWrongLengthIsRefused) {
  const uint8_t short_secret[31] = {};
  absl::StatusOr<TenantKey> key = TenantKey::FromSecret(short_secret);
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
}

// --- recovery text --------------------------------------------------------

TEST(RecoveryTextTest, ExportImportRoundTrip) {
  const TenantKey key = NewKey();
  const std::string text = key.ToRecoveryText();
  EXPECT_THAT(text, MatchesRegex("cbtd1(-[0-9A-HJKMNP-TV-Z]{5}){14}"));
  absl::StatusOr<TenantKey> back = TenantKey::FromRecoveryText(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == key);
  EXPECT_EQ(back->fingerprint(), key.fingerprint());
}

TEST(RecoveryTextTest, SpacesNewlinesCaseAndLookalikesAreIgnored) {
  const TenantKey key = NewKey();
  std::string text = key.ToRecoveryText();
  // As typed from paper: lower case, groups on several lines, no dashes,
  // 0 read as O and 1 as l.
  std::string typed;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '-') {
      typed += (i % 3 == 0) ? "\n  " : " ";
      continue;
    }
    if (c == '0') c = 'O';
    if (c == '1' && i > 5) c = 'l';
    typed += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  typed += "\n";
  absl::StatusOr<TenantKey> back = TenantKey::FromRecoveryText(typed);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << typed;
  EXPECT_TRUE(*back == key);
}

TEST(RecoveryTextTest, EveryOneCharacterTypoIsRefusedNamingItsGroup) {
  const TenantKey key = NewKey();
  const std::string text = key.ToRecoveryText();
  constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  for (size_t i = 6; i < text.size(); ++i) {
    if (text[i] == '-') continue;
    const size_t group = (i - 6) / 6 + 1;
    for (char c : kAlphabet) {
      if (c == text[i]) continue;
      std::string typo = text;
      typo[i] = c;
      absl::StatusOr<TenantKey> back = TenantKey::FromRecoveryText(typo);
      ASSERT_FALSE(back.ok()) << "typo at " << i << " accepted: " << typo;
      EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
      ASSERT_THAT(back.status().message(),
                  HasSubstr("typo in group " + std::to_string(group) + " ("))
          << typo;
    }
  }
}

TEST(RecoveryTextTest, SwappedGroupsAreRefused) {
  std::string text = NewKey().ToRecoveryText();
  // Groups 2 and 3 (characters 12..16 and 18..22).
  std::string swapped = text;
  std::swap_ranges(swapped.begin() + 12, swapped.begin() + 17,
                   swapped.begin() + 18);
  absl::StatusOr<TenantKey> back = TenantKey::FromRecoveryText(swapped);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(back.status().message(), HasSubstr("group 2"));
}

TEST(RecoveryTextTest, MalformedTextSaysWhatIsWrong) {
  const std::string text = NewKey().ToRecoveryText();
  EXPECT_THAT(TenantKey::FromRecoveryText("").status().message(),
              HasSubstr("must start with cbtd1-"));
  EXPECT_THAT(TenantKey::FromRecoveryText(text.substr(5)).status().message(),
              HasSubstr("must start with cbtd1-"));
  EXPECT_THAT(TenantKey::FromRecoveryText(text.substr(0, text.size() - 6))
                  .status()
                  .message(),
              HasSubstr("has 65 characters after cbtd1-, not 70"));
  std::string bad_char = text;
  bad_char[8] = 'U';
  EXPECT_THAT(TenantKey::FromRecoveryText(bad_char).status().message(),
              HasSubstr("group 1"));
  EXPECT_THAT(TenantKey::FromRecoveryText(bad_char).status().message(),
              HasSubstr("not a base32 character"));
}

// --- key file ---------------------------------------------------------------

TEST(KeyFileTest, CreateThenLoad) {
  test::TempDir dir;
  const std::string path = dir / "keys/default.key";  // keys/ is created
  const TenantKey key = NewKey();
  ASSERT_TRUE(CreateKeyFile(path, key, kCreated).ok());

  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((dir / "keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);

  const std::string text = Slurp(path);
  EXPECT_THAT(text, HasSubstr("cbtd-key-v1\n"));
  EXPECT_THAT(text, HasSubstr("fingerprint " + key.fingerprint() + "\n"));
  EXPECT_THAT(text, HasSubstr("created 2026-05-01T10:00:00Z\n"));

  absl::StatusOr<KeyFile> loaded = LoadKeyFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->key == key);
  EXPECT_EQ(loaded->created_unix, kCreated);
  EXPECT_EQ(loaded->path, path);
  // No temporary file is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir / "keys"),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(KeyFileTest, ExistingKeyIsNeverOverwritten) {
  test::TempDir dir;
  const std::string path = dir / "default.key";
  const TenantKey first = NewKey();
  ASSERT_TRUE(CreateKeyFile(path, first, kCreated).ok());
  const std::string before = Slurp(path);
  absl::Status st = CreateKeyFile(path, NewKey(), kCreated + 1);
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(st.message(), HasSubstr(path));
  EXPECT_THAT(st.message(), HasSubstr("refusing to replace"));
  EXPECT_EQ(Slurp(path), before);
  EXPECT_TRUE(LoadKeyFile(path)->key == first);
}

TEST(KeyFileTest, MissingFileIsNotFoundNamingItAndTheFix) {
  test::TempDir dir;
  absl::StatusOr<KeyFile> loaded = LoadKeyFile(dir / "nope.key");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(loaded.status().message(), HasSubstr(dir / "nope.key"));
  EXPECT_THAT(loaded.status().message(), HasSubstr("cbtctl key import"));
}

TEST(KeyFileTest, FileOthersCanReadOrWriteIsRefused) {
  test::TempDir dir;
  const std::string path = dir / "default.key";
  ASSERT_TRUE(CreateKeyFile(path, NewKey(), kCreated).ok());
  for (mode_t mode : {0640, 0604, 0620, 0602, 0644, 0666}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    absl::StatusOr<KeyFile> loaded = LoadKeyFile(path);
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition)
        << std::oct << mode;
    EXPECT_THAT(loaded.status().message(), HasSubstr("chmod 600 " + path));
  }
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  EXPECT_TRUE(LoadKeyFile(path).ok()) << "read-only for the owner is fine";
}

TEST(KeyFileTest, DirectoryIsNotAKeyFile) {
  test::TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
  EXPECT_EQ(LoadKeyFile(dir.path()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

struct DamageCase {
  std::string name;
  std::string from, to;  // replace `from` in a good file by `to`
  std::string message;
};

TEST(KeyFileTest, DamagedFilesAreDataLossNamingTheFile) {
  test::TempDir dir;
  const std::string good_path = dir / "good.key";
  const TenantKey key = NewKey();
  ASSERT_TRUE(CreateKeyFile(good_path, key, kCreated).ok());
  const std::string good = Slurp(good_path);
  const std::string key_hex = good.substr(good.find("\nkey ") + 5, 64);
  std::string flipped_hex = key_hex;
  flipped_hex[10] = flipped_hex[10] == '0' ? '1' : '0';

  const DamageCase cases[] = {
      {"wrong magic", "cbtd-key-v1", "cbtd-key-v9", "not a cbtd key file"},
      {"not a key file at all", good, "hello\n", "not a cbtd key file"},
      {"empty", good, "", "not a cbtd key file"},
      {"short key", key_hex, key_hex.substr(0, 62), "62 hex digits, not 64"},
      {"long key", key_hex, key_hex + "00", "66 hex digits, not 64"},
      {"non-hex key", key_hex, "zz" + key_hex.substr(2), "not hex"},
      {"key changed", key_hex, flipped_hex, "does not match its key"},
      {"fingerprint changed", "fingerprint " + key.fingerprint(),
       "fingerprint 0000000000000000", "does not match its key"},
      {"missing key line", "key " + key_hex + "\n", "",
       "'key' line is missing"},
      {"bad date", "2026-05-01T10:00:00Z", "yesterday", "created line"},
      {"unknown line", "created", "kreated", "not understood"},
      {"truncated", good, good.substr(0, good.size() / 2), "missing"},
  };
  for (const DamageCase& c : cases) {
    const std::string path = dir / "bad.key";
    std::string text = good;
    const size_t at = text.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.name;
    text.replace(at, c.from.size(), c.to);
    Write(path, text, 0600);
    absl::StatusOr<KeyFile> loaded = LoadKeyFile(path);
    ASSERT_FALSE(loaded.ok()) << c.name;
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << c.name;
    EXPECT_THAT(loaded.status().message(), HasSubstr(path)) << c.name;
    EXPECT_THAT(loaded.status().message(), HasSubstr(c.message))
        << c.name << ": " << loaded.status();
  }
  // A file far larger than a key file is refused before parsing.
  const std::string big = dir / "big.key";
  Write(big, good + std::string(10000, '#'), 0600);
  EXPECT_EQ(LoadKeyFile(big).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace cbtd::transport
