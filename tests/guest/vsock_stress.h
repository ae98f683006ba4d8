// What the files of krunlet-vsockstress share (tests/guest/vsock_stress*.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

namespace krunlet::vsockstress {

// "--key value" and "--flag" words after the mode. Every getter marks its key as used;
// done() reports a missing, malformed or unknown option (once, on stdout) and says whether
// all was well.
class Args {
public:
    Args(int argc, char** argv, int first);
    uint64_t u64(const std::string& key, std::optional<uint64_t> dflt = std::nullopt);
    uint32_t u32(const std::string& key, std::optional<uint64_t> dflt = std::nullopt);
    std::string str(const std::string& key, std::optional<std::string> dflt = std::nullopt);
    bool flag(const std::string& key);
    bool done();

private:
    std::map<std::string, std::string> values_;
    std::set<std::string> used_;
    std::string bad_;
};

// vsock_stress_bench.cpp
int mode_bench(Args& a);
// As a whole guest's init: mounts, console, eth0 (10.0.2.15/24, slirp's default).
void pid1_setup();
[[noreturn]] void pid1_finish(int rc);

}  // namespace krunlet::vsockstress
