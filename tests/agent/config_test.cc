#include "agent/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

namespace cbtd::agent {
namespace {

using ::testing::HasSubstr;

constexpr char kGood[] = R"(# cbtd test config
[agent]
max_concurrent_runs = 3
bandwidth_limit = 100M
metrics_file = /var/lib/prometheus/node-exporter/cbtd.prom

[receiver]
address = backup.example.net:7443
ca_file = /etc/cbtd/ca.pem
cert_file = /etc/cbtd/host.pem
key_file = /etc/cbtd/host.key

[volume.root]
path = /dev/vg0/root
method = thin-delta
chunk_size = 256K
schedule = daily 02:30
keep_last = 3
keep_daily = 7

[volume.data]
path = /dev/vg0/data   # a thick LV
method = cow-table
cow_size = 10G
schedule = Mon..Fri 01:00
randomized_delay = 10m

[group.vm1]
members = root, data
freeze = no
freeze_timeout = 5s
pre_hook = virsh domfsfreeze vm1
pre_hook = logger frozen
frozen_hook = logger in-window
post_hook = virsh domfsthaw vm1
sequential = no
schedule = every 6h
randomized_delay = 1h30m
)";

TEST(ConfigTest, ParsesAFullConfig) {
  absl::StatusOr<Config> c = ParseConfig("/etc/cbtd/cbtd.conf", kGood);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_concurrent_runs, 3);
  EXPECT_EQ(c->bandwidth_limit_bytes_per_sec, 100u << 20);
  EXPECT_EQ(c->receiver.address, "backup.example.net:7443");
  EXPECT_EQ(c->receiver.key_file, "/etc/cbtd/host.key");
  ASSERT_EQ(c->volumes.size(), 2u);
  const VolumeConfig* root = c->FindVolume("root");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->path, "/dev/vg0/root");
  EXPECT_EQ(root->method, TrackingMethod::kThinDelta);
  EXPECT_EQ(root->chunk_bytes, 256u << 10);
  ASSERT_TRUE(root->schedule.has_value());
  EXPECT_EQ(root->schedule->kind(), Schedule::Kind::kDaily);
  EXPECT_EQ(root->retention.keep_last, 3);
  EXPECT_EQ(root->retention.keep_daily, 7);
  const VolumeConfig* data = c->FindVolume("data");
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->path, "/dev/vg0/data");
  EXPECT_EQ(data->cow_size.bytes, 10ULL << 30);
  EXPECT_TRUE(data->retention.KeepsEverything());
  ASSERT_TRUE(data->schedule.has_value());
  EXPECT_EQ(data->schedule->kind(), Schedule::Kind::kCalendar);
  EXPECT_EQ(data->randomized_delay, absl::Minutes(10));
  EXPECT_EQ(root->randomized_delay, absl::ZeroDuration());  // the default
  const GroupConfig* g = c->FindGroup("vm1");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->members, (std::vector<std::string>{"root", "data"}));
  EXPECT_FALSE(g->freeze);
  EXPECT_EQ(g->freeze_timeout, absl::Seconds(5));
  EXPECT_EQ(g->pre_hooks, (std::vector<std::string>{"virsh domfsfreeze vm1",
                                                    "logger frozen"}));
  EXPECT_EQ(g->post_hooks, (std::vector<std::string>{"virsh domfsthaw vm1"}));
  EXPECT_EQ(g->frozen_hooks, (std::vector<std::string>{"logger in-window"}));
  EXPECT_FALSE(g->sequential);
  EXPECT_EQ(g->randomized_delay, absl::Minutes(90));
  EXPECT_EQ(c->LineOf("volume.data.path"), 22);
  EXPECT_EQ(c->LineOf("agent.socket"), 0);
  EXPECT_EQ(c->socket_path, "/run/cbtd/cbtd.sock");
}

struct BadRow {
  const char* text;
  const char* expected;  // "file:line: ..." substring
};

TEST(ConfigTest, EveryProblemNamesItsLine) {
  const BadRow rows[] = {
      {"[volume.a]\npath = /dev/x\nmethod = magic\n",
       "cbtd.conf:3: method 'magic'"},
      {"[volume.a]\npath = /dev/x\nchunk_size = 3000\n",
       "cbtd.conf:3: chunk_size 3000 must be a power of two"},
      {"[volume.a]\npath = /dev/x\ncolour = blue\n",
       "cbtd.conf:3: unknown key 'colour' in [volume.a]"},
      {"[volume.a]\npath = /dev/x\npath = /dev/y\n",
       "cbtd.conf:3: 'volume.a.path' is set twice (first on line 2)"},
      {"[volume.a]\nmethod = hash\n", "cbtd.conf:2: volume 'a' has no 'path'"},
      {"\n[receiver]\naddress = nohostport\n",
       "cbtd.conf:3: receiver address 'nohostport'"},
      {"[receiver]\naddress = host:99999\n", "cbtd.conf:2: receiver address"},
      {"[volume.a]\npath = /dev/x\n[group.g]\nmembers = a b\n",
       "cbtd.conf:4: group 'g' names volume 'b'"},
      {"[volume.a]\npath = /dev/x\nschedule = weekly 02:00\n",
       "cbtd.conf:3: schedule 'weekly 02:00': 'weekly' is a shorthand"},
      {"[volume.a]\npath = /dev/x\nschedule = *-02-30\n",
       "cbtd.conf:3: schedule '*-02-30': no calendar day matches it"},
      {"[volume.a]\npath = /dev/x\nrandomized_delay = soon\n",
       "cbtd.conf:3: 'soon' is not a duration"},
      {"[group.g]\nmembers = a\nrandomized_delay = -5m\n",
       "cbtd.conf:3: '-5m' is not a duration"},
      {"[agent]\nmax_concurrent_runs = 0\n",
       "cbtd.conf:2: 'agent.max_concurrent_runs' must be a whole number"},
      {"[volume.a]\npath = /dev/x\njust some words\n",
       "cbtd.conf:3: expected 'key = value'"},
      {"[volume.a b]\npath = /dev/x\n", "cbtd.conf:2: 'a b' is not a valid"},
      {"[volume."
       "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
       "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
       "]\npath = /dev/x\n",
       "cbtd.conf:2: invalid volume name 'vvvv"},
      {"stray = 1\n", "cbtd.conf:1: 'stray' is outside any section"},
      {"[agent]\nencryption = aes\n",
       "cbtd.conf:2: 'encryption' must be aes-256-gcm or none, not 'aes'"},
      {"[agent]\nkey_file = keys/k\n",
       "cbtd.conf:2: 'key_file' must be an absolute path"},
      {"[group.g]\nfreeze = maybe\nmembers = \n",
       "cbtd.conf:2: 'freeze' must be yes or no"},
      {"[volume.a]\npath = /dev/x\n[volume.b]\npath = /dev/y\n"
       "[group.g]\nmembers = a\n[group.h]\nmembers = a b\n",
       "cbtd.conf:8: volume 'a' is in groups 'g' and 'h'"},
      {"[volume.a]\npath = /dev/x\nchanges_file = /run/a.json\n",
       "cbtd.conf:2: volume 'a': changes_file is read only with method = "
       "external"},
  };
  for (const BadRow& row : rows) {
    absl::StatusOr<Config> c = ParseConfig("/etc/cbtd/cbtd.conf", row.text);
    ASSERT_FALSE(c.ok()) << row.text;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(row.expected))
        << row.text;
  }
}

// Lists may come only through the control API.
TEST(ConfigTest, ExternalListsNeedNoChangesFile) {
  absl::StatusOr<Config> c = ParseConfig(
      "cbtd.conf", "[volume.a]\npath = /dev/x\nmethod = external\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->volumes[0].method, TrackingMethod::kExternal);
  EXPECT_EQ(c->volumes[0].changes_file, "");
}

TEST(ConfigTest, EncryptionIsOnByDefaultAndCheckConfigSaysSo) {
  absl::StatusOr<Config> c = ParseConfig("cbtd.conf", "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->encryption.enabled);
  EXPECT_EQ(c->encryption.key_file, "/var/lib/cbtd/keys/default.key");
  EXPECT_THAT(EncryptionSummary(*c),
              HasSubstr("encryption: aes-256-gcm, key "
                        "/var/lib/cbtd/keys/default.key"));

  c = ParseConfig("cbtd.conf", "[agent]\nkey_file = /etc/cbtd/host.key\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(EncryptionSummary(*c), HasSubstr("key /etc/cbtd/host.key"));
}

TEST(ConfigTest, EncryptionNoneSaysPlainlyBackupsAreUnencrypted) {
  absl::StatusOr<Config> c =
      ParseConfig("cbtd.conf", "[agent]\nencryption = none\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->encryption.enabled);
  EXPECT_THAT(EncryptionSummary(*c), HasSubstr("encryption: none"));
  EXPECT_THAT(EncryptionSummary(*c),
              HasSubstr("backups are stored UNENCRYPTED"));
}

TEST(ConfigTest, ReportsAllProblemsAtOnce) {
  absl::StatusOr<Config> c = ParseConfig(
      "cbtd.conf", "[volume.a]\npath = rel\nmethod = x\nkeep_last = -1\n");
  ASSERT_FALSE(c.ok());
  const std::string m(c.status().message());
  EXPECT_THAT(m, HasSubstr("cbtd.conf:2:"));
  EXPECT_THAT(m, HasSubstr("cbtd.conf:3:"));
  EXPECT_THAT(m, HasSubstr("cbtd.conf:4:"));
}

TEST(ConfigTest, CowMaxSizeDefaultsToTheOriginAndTakesTheCowSizeForms) {
  absl::StatusOr<Config> c =
      ParseConfig("cbtd.conf",
                  "[volume.a]\npath = /dev/vg/a\n[volume.b]\npath = /dev/vg/b\n"
                  "cow_max_size = 50%\n[volume.c]\npath = /dev/vg/c\n"
                  "cow_max_size = 2G\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->FindVolume("a")->cow_max_size.BytesFor(8ULL << 30), 8ULL << 30);
  EXPECT_EQ(c->FindVolume("b")->cow_max_size.BytesFor(8ULL << 30), 4ULL << 30);
  EXPECT_EQ(c->FindVolume("c")->cow_max_size.BytesFor(8ULL << 30), 2ULL << 30);
  absl::StatusOr<Config> bad = ParseConfig(
      "cbtd.conf", "[volume.a]\npath = /dev/vg/a\ncow_max_size = 0%\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("cbtd.conf:3: cow_max_size as a percentage must be 1% "
                        "to 100%"));
}

class FakeProbe : public ConfigProbe {
 public:
  std::set<std::string> missing;
  absl::Status CheckVolumePath(const std::string& path) override {
    return missing.contains(path) ? absl::NotFoundError("stat " + path)
                                  : absl::OkStatus();
  }
  absl::Status CheckReadable(const std::string& path) override {
    return missing.contains(path) ? absl::PermissionDeniedError("open " + path)
                                  : absl::OkStatus();
  }
  absl::Status CheckReachable(const std::string& address) override {
    return unreachable ? absl::UnavailableError("connection refused")
                       : absl::OkStatus();
  }
  // A thin LV with its own device number unless `volumes` says otherwise.
  absl::StatusOr<snapshot::VolumeInfo> DescribeVolume(
      const std::string& path) override {
    if (auto it = volumes.find(path); it != volumes.end()) return it->second;
    snapshot::VolumeInfo v;
    v.path = path;
    v.kind = snapshot::VolumeKind::kThinLv;
    v.major = 253;
    v.minor = static_cast<uint32_t>(std::hash<std::string>{}(path) % 100000);
    return v;
  }
  bool unreachable = false;
  std::map<std::string, snapshot::VolumeInfo> volumes;
};

snapshot::VolumeInfo Volume(snapshot::VolumeKind kind, uint32_t minor,
                            std::string reason = "") {
  snapshot::VolumeInfo v;
  v.kind = kind;
  v.major = 253;
  v.minor = minor;
  v.not_snapshottable_reason = std::move(reason);
  return v;
}

TEST(ConfigTest, CheckConfigRefusesWhatARunWouldRefuse) {
  const std::string text = R"([receiver]
address = unix:/run/r.sock

[volume.a]
path = /dev/vg/a
method = thin-delta

[volume.b]
path = /dev/mapper/b

[volume.c]
path = /dev/sdc

[group.g]
members = a b
)";
  absl::StatusOr<Config> c = ParseConfig("/etc/cbtd/cbtd.conf", text);
  ASSERT_TRUE(c.ok()) << c.status();
  FakeProbe probe;
  probe.volumes["/dev/vg/a"] = Volume(snapshot::VolumeKind::kThickLv, 4);
  probe.volumes["/dev/mapper/b"] = Volume(snapshot::VolumeKind::kOtherDm, 4);
  probe.volumes["/dev/sdc"] = Volume(snapshot::VolumeKind::kBlockDevice, 32,
                                     "/dev/sdc is a plain block device");
  const std::vector<ConfigProblem> problems = CheckConfig(*c, probe);
  const std::string report = FormatProblems("cbtd.conf", problems);
  EXPECT_THAT(report, HasSubstr("cbtd.conf:6: warning: volume 'a': method "
                                "thin-delta needs a thin LV; /dev/vg/a is "
                                "thick, so every run would compare hashes"));
  EXPECT_THAT(report, HasSubstr("cbtd.conf:9: volume 'b': /dev/mapper/b is "
                                "a device-mapper volume that lvm2 does not "
                                "manage; its snapshots need 'cow_device'"));
  EXPECT_THAT(report, HasSubstr("cbtd.conf:12: volume 'c': /dev/sdc is a "
                                "plain block device"));
  EXPECT_THAT(report, HasSubstr("cbtd.conf:15: group 'g': volumes 'a' and "
                                "'b' are the same device (253:4)"));
  EXPECT_TRUE(HasErrors(problems));
}

TEST(ConfigTest, FrozenHookInASequentialGroupIsRefusedAtParse) {
  const std::string text = R"([receiver]
address = unix:/run/r.sock
[volume.a]
path = /dev/vg/a
[group.g]
members = a
sequential = yes
frozen_hook = true
)";
  absl::StatusOr<Config> c = ParseConfig("/etc/cbtd/cbtd.conf", text);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              HasSubstr("cbtd.conf:8: group 'g' has a frozen_hook but "
                        "sequential = yes"));
}

TEST(ConfigTest, CheckConfigNamesEachHostProblemWithItsLine) {
  absl::StatusOr<Config> c = ParseConfig("/etc/cbtd/cbtd.conf", kGood);
  ASSERT_TRUE(c.ok());
  FakeProbe probe;
  probe.volumes["/dev/vg0/data"] = Volume(snapshot::VolumeKind::kThickLv, 7);
  EXPECT_TRUE(CheckConfig(*c, probe).empty());
  probe.missing = {"/dev/vg0/data", "/etc/cbtd/host.key"};
  probe.unreachable = true;
  const std::string report =
      FormatProblems("cbtd.conf", CheckConfig(*c, probe));
  EXPECT_THAT(report, HasSubstr("cbtd.conf:22: volume 'data': stat "
                                "/dev/vg0/data"));
  EXPECT_THAT(report, HasSubstr("cbtd.conf:11: receiver key_file: open "
                                "/etc/cbtd/host.key"));
  EXPECT_THAT(report, HasSubstr("cbtd.conf:8: warning: receiver "
                                "backup.example.net:7443: connection refused"));
  EXPECT_TRUE(HasErrors(CheckConfig(*c, probe)));
  // An unreachable receiver alone is a warning: cbtd must still start.
  probe.missing.clear();
  const std::vector<ConfigProblem> only_unreachable = CheckConfig(*c, probe);
  ASSERT_EQ(only_unreachable.size(), 1u);
  EXPECT_FALSE(HasErrors(only_unreachable));
}

// docs/operations.md points at this file; it must stay a valid config.
TEST(ConfigTest, DocumentedExampleParses) {
  absl::StatusOr<Config> c = LoadConfig("docs/cbtd.conf.example");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->volumes.size(), 4u);
  ASSERT_NE(c->FindVolume("archive"), nullptr);
  EXPECT_EQ(c->FindVolume("archive")->cow_devices,
            (std::vector<std::string>{"/dev/disk/by-id/ata-SPARE-part1",
                                      "/dev/disk/by-id/ata-SPARE-part2"}));
  ASSERT_NE(c->FindGroup("vm1"), nullptr);
  EXPECT_EQ(c->FindGroup("vm1")->pre_hooks,
            std::vector<std::string>{"virsh domfsfreeze vm1"});
  EXPECT_EQ(c->FindVolume("vm1-data")->cow_size.percent_of_origin, 20);
  EXPECT_FALSE(c->FindGroup("vm1")->sequential);
}

TEST(ConfigTest, CowDeviceIsCheckedWithItsLine) {
  absl::StatusOr<Config> c =
      ParseConfig("cbtd.conf",
                  "[receiver]\naddress = unix:/run/r.sock\n"
                  "[volume.d]\npath = /dev/mapper/d\n"
                  "cow_device = /dev/sdy /dev/sdz\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->FindVolume("d")->cow_devices,
            (std::vector<std::string>{"/dev/sdy", "/dev/sdz"}));
  FakeProbe probe;
  probe.missing = {"/dev/sdz"};
  EXPECT_THAT(FormatProblems("cbtd.conf", CheckConfig(*c, probe)),
              HasSubstr("cbtd.conf:5: volume 'd' cow_device: stat /dev/sdz"));
  absl::StatusOr<Config> bad = ParseConfig(
      "cbtd.conf", "[volume.d]\npath = /dev/mapper/d\ncow_device = /dev/sdz\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("cbtd.conf:3: 'cow_device' must name two different"));
}

TEST(ConfigTest, TlsAddressNeedsCertificates) {
  absl::StatusOr<Config> c = ParseConfig(
      "cbtd.conf", "[receiver]\naddress = [::1]:7443\nca_file = /ca.pem\n");
  ASSERT_TRUE(c.ok()) << c.status();
  FakeProbe probe;
  const std::string report =
      FormatProblems("cbtd.conf", CheckConfig(*c, probe));
  EXPECT_THAT(report, HasSubstr("needs 'cert_file'"));
  EXPECT_THAT(report, HasSubstr("needs 'key_file'"));
}

}  // namespace
}  // namespace cbtd::agent
