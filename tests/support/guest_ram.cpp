#include "guest_ram.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace krunlet::test {

GuestRamUsage guest_ram_usage(pid_t pid, long guest_ram_kib) {
    struct Vma {
        unsigned long start = 0, end = 0;
        bool anonymous = false, kernel = false;
        long rss = 0, dirty = 0, priv = 0;
    };
    std::vector<Vma> vmas;
    std::ifstream smaps("/proc/" + std::to_string(pid) + "/smaps");
    for (std::string line; std::getline(smaps, line);) {
        std::istringstream in(line);
        std::string first;
        in >> first;
        if (first.empty()) continue;
        if (first.back() != ':') {  // "start-end perms offset dev inode [path]"
            Vma v;
            std::string perms, off, dev, inode, path;
            in >> perms >> off >> dev >> inode >> path;
            if (std::sscanf(first.c_str(), "%lx-%lx", &v.start, &v.end) != 2) continue;
            v.anonymous = inode == "0" && path.empty();
            v.kernel = path.find("libkrunlet-kernel") != std::string::npos;
            vmas.push_back(v);
            continue;
        }
        long value = 0;
        if (vmas.empty() || !(in >> value)) continue;
        if (first == "Rss:") vmas.back().rss = value;
        if (first == "Private_Dirty:") vmas.back().dirty = value;
        if (first == "Private_Clean:" || first == "Private_Dirty:") vmas.back().priv += value;
    }
    GuestRamUsage u;
    const unsigned long size = (unsigned long)guest_ram_kib * 1024;
    // Candidates for the last piece of guest RAM, largest first; the first whose range is
    // covered, without a gap, by mappings starting exactly at the range's start wins.
    std::vector<size_t> order;
    for (size_t i = 0; i < vmas.size(); ++i)
        if (vmas[i].anonymous && vmas[i].end - vmas[i].start <= size) order.push_back(i);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return vmas[a].end - vmas[a].start > vmas[b].end - vmas[b].start;
    });
    for (size_t last : order) {
        const unsigned long end = vmas[last].end, start = end - size;
        size_t first = last;
        while (first > 0 && vmas[first].start > start && vmas[first - 1].end == vmas[first].start) --first;
        if (vmas[first].start != start) continue;
        u.found = true;
        for (size_t i = 0; i < vmas.size(); ++i) {
            const bool in_ram = i >= first && i <= last;
            (in_ram ? u.guest_ram_kib : u.own_kib) += vmas[i].rss;
            if (!in_ram) u.own_private_kib += vmas[i].priv;
            if (in_ram && vmas[i].kernel) {
                u.kernel_kib += vmas[i].rss;
                u.kernel_dirty_kib += vmas[i].dirty;
            }
        }
        break;
    }
    return u;
}

}  // namespace krunlet::test
