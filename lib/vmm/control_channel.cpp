#include "vmm/control_channel.h"

#include <nlohmann/json.hpp>

namespace krunlet {

ControlChannel::ControlChannel(Workload workload, bool tty, OnExit on_exit)
    : workload_(std::move(workload)), tty_(tty), on_exit_(std::move(on_exit)) {}

std::string ControlChannel::exec_message() const {
    nlohmann::json msg = {{"type", "exec"}, {"tty", tty_}};
    if (!workload_.args.empty()) msg["args"] = workload_.args;
    if (!workload_.env.empty()) msg["env"] = workload_.env;
    if (!workload_.workdir.empty()) msg["workdir"] = workload_.workdir;
    if (!workload_.rlimits.empty()) msg["rlimits"] = workload_.rlimits;
    // Only when there are volumes: an init that predates "mounts" never sees it.
    for (const VolumeMount& m : workload_.mounts)
        msg["mounts"].push_back({{"tag", m.tag}, {"path", m.guest_path}, {"read_only", m.read_only}});
    // Strings came from the C API and may hold invalid UTF-8; replace rather
    // than throw.
    return msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void ControlChannel::on_connect(Send send) {
    send_ = std::move(send);
    std::string framed = control::frame(exec_message());
    send_(std::span(reinterpret_cast<const uint8_t*>(framed.data()), framed.size()));
}

void ControlChannel::on_data(std::span<const uint8_t> bytes) {
    decoder_.feed(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    while (auto msg = decoder_.next()) {
        // guest-controlled: parse without exceptions and check every type.
        auto j = nlohmann::json::parse(*msg, nullptr, false);
        if (j.is_discarded() || !j.is_object()) continue;
        auto type = j.find("type");
        if (type == j.end() || !type->is_string()) continue;
        if (*type == "exit") {
            auto code = j.find("code");
            if (code == j.end() || !code->is_number_integer()) continue;
            // Range-check in 64 bits before narrowing: 2^32 must not become 0.
            int c = kExitVmmError;
            if (code->is_number_unsigned()) {
                if (code->get<uint64_t>() <= 255) c = static_cast<int>(code->get<uint64_t>());
            } else if (int64_t v = code->get<int64_t>(); v >= 0 && v <= 255) {
                c = static_cast<int>(v);
            }
            if (!exit_code_) {
                exit_code_ = c;
                if (on_exit_) on_exit_(c);
            }
        }
    }
}

void ControlChannel::on_close() { send_ = nullptr; }

bool ControlChannel::send_signal(int signo) {
    if (!send_) return false;
    std::string framed = control::frame(nlohmann::json({{"type", "signal"}, {"signo", signo}}).dump());
    return send_(std::span(reinterpret_cast<const uint8_t*>(framed.data()), framed.size()));
}

}  // namespace krunlet
