// The host side of the krunlet-bench fs workload: the work directory inside the shared root
// filesystem, with the files the guest program (bench/guest/fsbench_guest.cpp) expects.
//
//   ROOTFS/krunlet-fsbench/            kGuestDir in the guest (both engines share ROOTFS as /)
//     .krunlet-fsbench                 stamp: only a directory holding it is ever removed
//     fsbench-guest                    copy of build/bin/krunlet-fsbench-guest
//     randread.dat                     randread_mib MiB; each 4 KiB page starts with its index (u64 LE)
//     tree/dNN/dNN/fNNN                tree_entries entries in all: 10 subdirectories per top
//                                      directory, up to 500 empty files per subdirectory
//
// The guest creates seq.dat and small/ and removes them again; reset() removes what an
// interrupted run left.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace krunlet::bench {

struct WorkloadSpec {
    uint64_t randread_mib = 64;
    uint64_t tree_entries = 50000;
    std::string guest_binary;  // host path of krunlet-fsbench-guest
};

class WorkDir {
public:
    static constexpr const char* kGuestDir = "/krunlet-fsbench";
    static constexpr const char* kGuestBinary = "/krunlet-fsbench/fsbench-guest";

    // Creates ROOTFS/krunlet-fsbench (replacing a leftover of an earlier run, refusing any other
    // directory of that name) and fills it.
    static Result<WorkDir> prepare(const std::string& rootfs, const WorkloadSpec& spec);
    WorkDir(WorkDir&& o) noexcept;
    WorkDir& operator=(WorkDir&&) = delete;
    WorkDir(const WorkDir&) = delete;
    WorkDir& operator=(const WorkDir&) = delete;
    ~WorkDir();  // removes the directory unless keep() was called

    const std::string& host_path() const { return path_; }
    void keep() { keep_ = true; }
    // Removes seq.dat and small/ if a guest left them.
    Result<void> reset() const;
    double prepare_seconds() const { return prepare_s_; }

private:
    WorkDir() = default;
    std::string path_;
    bool keep_ = false;
    double prepare_s_ = 0;
};

// rm -r without following symlinks; a missing path is fine.
Result<void> remove_tree(const std::string& path);

}  // namespace krunlet::bench
