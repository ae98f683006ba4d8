// Scratch directories for the oci tests.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/krunlet-oci-test-XXXXXX";
        char* p = ::mkdtemp(tmpl);
        path = p ? p : "";
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

inline void write_text(const std::string& p, const std::string& s, mode_t mode = 0644) {
    std::ofstream(p, std::ios::binary) << s;
    ::chmod(p.c_str(), mode);
}

inline std::string read_text(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline bool exists_nofollow(const std::string& p) {
    struct stat st{};
    return ::lstat(p.c_str(), &st) == 0;
}
