// krunlet-bench boot: boot-time numbers of the krunlet CLI (never timed assertions in tests).
#pragma once

#include <string>

namespace krunlet::bench {

int run_boot(int runs, const std::string& rootfs, const std::string& krunlet);

}  // namespace krunlet::bench
