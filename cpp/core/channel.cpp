#include "channel.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace a3s {

Channel::Channel() {
    fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd_ < 0) {
        throw std::runtime_error("eventfd failed");
    }
}

Channel::~Channel() {
    if (fd_ >= 0) {
        close(fd_);
    }
}

void Channel::notify() {
    uint64_t one = 1;
    ssize_t  n   = write(fd_, &one, sizeof(one));
    (void) n;  // EAGAIN only when the counter would overflow: the reader is already woken
}

void Channel::push(StreamEvent ev) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (closed_) {
            return;
        }
        queue_.push_back(std::move(ev));
    }
    notify();
}

void Channel::finish(Completion c) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (closed_) {
            return;
        }
        completion_ = std::move(c);
        closed_     = true;
    }
    notify();
}

void Channel::fail(const std::string & err) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (closed_) {
            return;
        }
        error_  = err.empty() ? std::string("unknown error") : err;
        closed_ = true;
    }
    notify();
}

void Channel::cancel() {
    cancelled_.store(true, std::memory_order_relaxed);
}

bool Channel::drain(std::vector<StreamEvent> & out, bool & done, Completion & completion, std::string & error) {
    uint64_t counter = 0;
    ssize_t  n       = read(fd_, &counter, sizeof(counter));
    (void) n;
    std::lock_guard<std::mutex> lock(mu_);
    while (!queue_.empty()) {
        out.push_back(std::move(queue_.front()));
        queue_.pop_front();
    }
    done = closed_;
    if (closed_) {
        completion = completion_;
        error      = error_;
    }
    return !closed_;
}

void Channel::wait(int timeout_ms) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (!queue_.empty() || closed_) {
            return;
        }
    }
    struct pollfd pfd = {fd_, POLLIN, 0};
    poll(&pfd, 1, timeout_ms);
}

}  // namespace a3s
