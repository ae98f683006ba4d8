// Formatting and statistics behind compare_table.h.
#include "compare_table.h"

#include <sys/stat.h>

#include <cmath>

namespace krunlet::bench {

std::optional<double> median(std::vector<double> v) {
    if (v.empty()) return std::nullopt;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string fmt_value(std::optional<double> v) {
    if (!v) return "-";
    char b[32];
    double a = std::fabs(*v);
    // Fewer decimals as the number grows: the table is read by eye, not parsed.
    std::snprintf(b, sizeof b, a >= 1000 ? "%.0f" : a >= 10 ? "%.1f" : "%.2f", *v);
    return b;
}

std::string fmt_ratio(std::optional<double> r) {
    if (!r) return "-";
    char b[32];
    std::snprintf(b, sizeof b, "%.2fx", *r);
    return b;
}

std::vector<std::string> split_engines(const std::string& list) {
    std::vector<std::string> out;
    for (size_t pos = 0; pos <= list.size();) {
        size_t end = list.find(',', pos);
        if (end == std::string::npos) end = list.size();
        out.push_back(list.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}

bool is_file(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void print_table_header(const TableLayout& t) {
    std::printf("\n%-*s | %*s | %*s | %7s\n", t.label_width, "metric", t.value_width, t.krunlet_heading,
                t.value_width, t.other_heading, "ratio");
    std::printf("%s\n", std::string(size_t(t.label_width + 3 + t.value_width + 3 + t.value_width + 3 + 7), '-').c_str());
}

void print_table_row(const TableLayout& t, const std::string& label, std::optional<double> k,
                     std::optional<double> o, std::optional<double> ratio) {
    std::printf("%-*s | %*s | %*s | %7s\n", t.label_width, label.c_str(), t.value_width, fmt_value(k).c_str(),
                t.value_width, fmt_value(o).c_str(), fmt_ratio(ratio).c_str());
}

}  // namespace krunlet::bench
