// The console protocol both VM-engine benchmarks read (fs_engines.cpp, net_engines.cpp): the
// guest program prints "TAG begin PHASE", "TAG end PHASE", "TAG result PHASE K=V ...",
// "TAG info K=V ...", "TAG done" and "TAG failed: WHY" on its console. The parsing of those
// lines and the end-of-run handling of the VMM process are the same for both benchmarks;
// what each samples at the markers differs and stays with the engine.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "child_process.h"

namespace krunlet::bench {

// "K=V K=V ..." into `out`; values that are not numbers are skipped (the guest may add
// words the host does not know yet, which must not break an older host).
void parse_pairs(const std::string& s, std::map<std::string, double>& out);

// The body of an "info" line into `out`. Keys in `whole_keys` take the rest of the line
// (a kernel command line or mount entry holds spaces); other values end at a space.
void parse_info(const std::string& rest, const std::vector<std::string>& whole_keys,
                std::map<std::string, std::string>& out);

// The last console lines, kept for error messages: a failed run is explained by what the
// guest printed just before it.
class ConsoleTail {
public:
    void push(const std::string& line);
    // The lines indented with "  | ", one per line.
    std::string joined() const;

private:
    std::deque<std::string> lines_;
};

// One line of the guest console split at the tag: the words after "TAG ", if the tag is on it.
std::optional<std::string> tagged_message(const std::string& line, const std::string& tag);

// The first space-free word of `msg` from position `n` on.
std::string word_at(const std::string& msg, size_t n);

// After the console loop: a still-open console means the deadline passed, so the VMM is
// killed and the error names --timeout. Otherwise waits (30 s at most) for the VMM's exit
// status, killing it if it hangs after closing its console.
Result<int> await_vmm_exit(Child& vmm, const std::string& label, int timeout_s, const ConsoleTail& tail);

// How to read one benchmark's console.
struct ConsoleReader {
    std::string tag;                           // "fsbench", "netbench"
    std::vector<std::string> whole_info_keys;  // see parse_info()
    std::string label;                         // the engine, for messages and --verbose
    int timeout_s = 0;
    bool verbose = false;                      // copy the console to stderr
    // At each "begin PHASE" / "end PHASE" marker; the guest pauses there so the host can
    // sample CPU time with the guest idle. An error ends the run.
    std::function<Result<void>(bool begin, const std::string& phase)> on_marker;
};

// What the guest program printed and how the VMM ended.
struct ConsoleReport {
    std::map<std::string, std::map<std::string, double>> results;  // phase -> key -> value
    std::map<std::string, std::string> info;
    bool done = false;    // "TAG done" was seen
    std::string failure;  // from "TAG failed: WHY"
    int status = 0;       // the VMM's exit status
    ConsoleTail tail;
};

// Reads the console until the VMM closes it (at most `timeout_s` after `start`), then
// waits for its exit (await_vmm_exit()).
Result<ConsoleReport> read_console(Child& vmm, Clock::time_point start, const ConsoleReader& r);

// Whether the run counts: the guest printed "done", no "failed:", and (when `check_status`)
// the VMM exited 0. `what` names the guest program in messages ("workload", "benchmark").
Result<void> check_run_end(const ConsoleReport& rep, Child& vmm, const std::string& label, const char* what,
                           bool check_status);

}  // namespace krunlet::bench
