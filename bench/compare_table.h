// The engine-against-engine table shared by `krunlet-bench fs` and `krunlet-bench net`: each
// row is one metric, the columns are the median per engine and the median of the per-round
// ratios krunlet / other. The rows differ per benchmark, the arithmetic and layout do not.
#pragma once

#include <algorithm>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace krunlet::bench {

std::optional<double> median(std::vector<double> v);

// Three significant-ish digits without a unit; "-" where a run had no value.
std::string fmt_value(std::optional<double> v);

// "1.23x", or "-" for no ratio.
std::string fmt_ratio(std::optional<double> r);

// Engine names from "--engines a,b"; empty entries are kept so the caller names them as unknown.
std::vector<std::string> split_engines(const std::string& list);

// True for a regular file (a guest program or kernel image the user pointed at).
bool is_file(const std::string& path);

template <class Run>
using MetricGetter = std::function<std::optional<double>(const Run&)>;

template <class Run>
std::optional<double> median_of(const std::vector<Run>* runs, const MetricGetter<Run>& get) {
    if (runs == nullptr) return std::nullopt;
    std::vector<double> v;
    for (const auto& r : *runs)
        if (auto x = get(r)) v.push_back(*x);
    return median(v);
}

// The median of the per-round ratios a / b: the two runs of a round are neighbours in time
// and share the machine's load of that moment, which the medians of each column do not.
template <class Run>
std::optional<double> paired_ratio(const std::vector<Run>* a, const std::vector<Run>* b,
                                   const MetricGetter<Run>& get) {
    if (a == nullptr || b == nullptr) return std::nullopt;
    std::vector<double> ratios;
    for (size_t i = 0; i < std::min(a->size(), b->size()); ++i) {
        auto x = get((*a)[i]);
        auto y = get((*b)[i]);
        if (x && y && *y != 0) ratios.push_back(*x / *y);
    }
    return median(ratios);
}

// Column widths and headings; the benchmarks use different widths, kept so their output stays
// the same as before the table was shared.
struct TableLayout {
    int label_width;
    int value_width;
    const char* krunlet_heading;
    const char* other_heading;
};

void print_table_header(const TableLayout& t);
void print_table_row(const TableLayout& t, const std::string& label, std::optional<double> k,
                     std::optional<double> o, std::optional<double> ratio);

// One row of the main table: the medians of both engines and their paired ratio.
template <class Run>
void print_compare_row(const TableLayout& t, const std::string& label, const MetricGetter<Run>& get,
                       const std::vector<Run>* k, const std::vector<Run>* o) {
    print_table_row(t, label, median_of(k, get), median_of(o, get), paired_ratio(k, o, get));
}

// One line of the per-round listing: "  label  k1 / o1  k2 / o2 ...".
template <class Run>
void print_round_row(int label_width, const std::string& label, const MetricGetter<Run>& get,
                     const std::vector<Run>& k, const std::vector<Run>& o) {
    std::printf("  %-*s", label_width, label.c_str());
    for (size_t i = 0; i < std::min(k.size(), o.size()); ++i)
        std::printf("  %s / %s", fmt_value(get(k[i])).c_str(), fmt_value(get(o[i])).c_str());
    std::printf("\n");
}

// One engine of a benchmark and its runs, one per round.
template <class Config, class Run>
struct BenchEngine {
    std::string name;    // as given to --engines
    std::string column;  // its heading in the table
    std::function<Result<Run>(const Config&)> run;
    std::vector<Run> runs;
};

// The runs of krunlet and of the engine it is compared with; nullptr for one not run.
template <class Run>
struct RunPair {
    const std::vector<Run>* krunlet = nullptr;
    const std::vector<Run>* other = nullptr;
    // Both ran more than once: the per-round listing says more than the medians.
    bool several_rounds() const { return krunlet && other && krunlet->size() > 1; }
};

template <class Config, class Run>
RunPair<Run> run_pair(const std::vector<BenchEngine<Config, Run>>& engines) {
    RunPair<Run> p;
    for (const auto& e : engines) (e.name == "krunlet" ? p.krunlet : p.other) = &e.runs;
    return p;
}

// The header and one row per metric (anything with `label` and `get`).
template <class Run, class Metric>
void print_compare_rows(const TableLayout& t, const std::vector<Metric>& metrics, const RunPair<Run>& p) {
    print_table_header(t);
    for (const auto& m : metrics) print_compare_row(t, m.label, m.get, p.krunlet, p.other);
}

// The engines in the order they run in `round` (1-based): ABBA, because the load of this
// shared machine drifts, and a fixed order would hand the quieter half of every round to the
// same engine.
template <class Engine>
std::vector<Engine*> abba_order(std::vector<Engine>& engines, int round) {
    std::vector<Engine*> order;
    for (auto& e : engines) order.push_back(&e);
    if (round % 2 == 0) std::reverse(order.begin(), order.end());
    return order;
}

// "  (whole VM run N s)\n": the median wall time of an engine's runs.
template <class Run>
void print_wall_median(const std::vector<Run>& runs) {
    std::vector<double> wall;
    for (const auto& r : runs) wall.push_back(r.wall_s);
    std::printf("  (whole VM run %s s)\n", fmt_value(median(wall)).c_str());
}

}  // namespace krunlet::bench
