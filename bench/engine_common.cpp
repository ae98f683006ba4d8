// The console-protocol helpers behind engine_common.h.
#include "engine_common.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>

namespace krunlet::bench {

void parse_pairs(const std::string& s, std::map<std::string, double>& out) {
    size_t pos = 0;
    while (pos < s.size()) {
        size_t end = s.find(' ', pos);
        if (end == std::string::npos) end = s.size();
        std::string kv = s.substr(pos, end - pos);
        if (auto eq = kv.find('='); eq != std::string::npos && eq > 0) {
            char* stop = nullptr;
            double v = std::strtod(kv.c_str() + eq + 1, &stop);
            if (stop != kv.c_str() + eq + 1 && *stop == '\0') out[kv.substr(0, eq)] = v;
        }
        pos = end + 1;
    }
}

void parse_info(const std::string& rest, const std::vector<std::string>& whole_keys,
                std::map<std::string, std::string>& out) {
    for (size_t pos = 0; pos < rest.size();) {
        size_t eq = rest.find('=', pos);
        if (eq == std::string::npos) break;
        std::string key = rest.substr(pos, eq - pos);
        bool whole = std::any_of(whole_keys.begin(), whole_keys.end(),
                                 [&](const std::string& k) { return key == k; });
        size_t end = whole ? rest.size() : std::min(rest.find(' ', eq), rest.size());
        out[key] = rest.substr(eq + 1, end - eq - 1);
        pos = end + 1;
    }
}

void ConsoleTail::push(const std::string& line) {
    // 30 lines: enough to show a kernel panic or the guest's own error, short enough to read.
    lines_.push_back(line);
    if (lines_.size() > 30) lines_.pop_front();
}

std::string ConsoleTail::joined() const {
    std::string s;
    for (const auto& l : lines_) s += "  | " + l + "\n";
    return s;
}

std::optional<std::string> tagged_message(const std::string& line, const std::string& tag) {
    // Searched anywhere on the line: the kernel may prefix console output (e.g. timestamps).
    std::string head = tag + " ";
    auto at = line.find(head);
    if (at == std::string::npos) return std::nullopt;
    return line.substr(at + head.size());
}

std::string word_at(const std::string& msg, size_t n) { return msg.substr(n, msg.find(' ', n) - n); }

Result<int> await_vmm_exit(Child& vmm, const std::string& label, int timeout_s, const ConsoleTail& tail) {
    if (!vmm.stdout_eof()) {
        vmm.kill_and_wait();
        return make_error(ETIMEDOUT, label + ": no end after " + std::to_string(timeout_s) +
                                         " s (raise --timeout); last console lines:\n" + tail.joined());
    }
    auto status = vmm.wait_until(Clock::now() + std::chrono::seconds(30));
    if (!status) status = vmm.kill_and_wait();
    return *status;
}

Result<ConsoleReport> read_console(Child& vmm, Clock::time_point start, const ConsoleReader& r) {
    ConsoleReport rep;
    const auto deadline = start + std::chrono::seconds(r.timeout_s);
    while (auto line = vmm.next_line(deadline)) {
        if (r.verbose) std::fprintf(stderr, "[%s] %s\n", r.label.c_str(), line->c_str());
        rep.tail.push(*line);
        auto tagged = tagged_message(*line, r.tag);
        if (!tagged) continue;
        const std::string& msg = *tagged;
        if (msg.rfind("begin ", 0) == 0 || msg.rfind("end ", 0) == 0) {
            bool begin = msg[0] == 'b';
            if (auto m = r.on_marker(begin, word_at(msg, begin ? 6 : 4)); !m.ok()) return m.error();
        } else if (msg.rfind("result ", 0) == 0) {
            std::string phase = word_at(msg, 7);
            parse_pairs(msg.substr(7 + phase.size()), rep.results[phase]);
        } else if (msg.rfind("info ", 0) == 0) {
            parse_info(msg.substr(5), r.whole_info_keys, rep.info);
        } else if (msg == "done") {
            rep.done = true;
        } else if (msg.rfind("failed: ", 0) == 0) {
            rep.failure = msg.substr(8);
        }
    }
    auto status = await_vmm_exit(vmm, r.label, r.timeout_s, rep.tail);
    if (!status.ok()) return status.error();
    rep.status = *status;
    return rep;
}

Result<void> check_run_end(const ConsoleReport& rep, Child& vmm, const std::string& label, const char* what,
                           bool check_status) {
    if (!rep.failure.empty()) return make_error(EIO, label + ": the guest " + what + " failed: " + rep.failure);
    if (!rep.done || (check_status && rep.status != 0))
        return make_error(EIO, label + " ended with status " + std::to_string(rep.status) +
                                   (rep.done ? "" : std::string(" before the ") + what + " finished") +
                                   "; last console lines:\n" + rep.tail.joined() + "stderr:\n" + vmm.stderr_tail());
    return ok_result();
}

}  // namespace krunlet::bench
