// The caller's side of `minik exec`: copies this terminal's (or pipe's) input to the
// command and its output back, as kubectl's stream handling does. With a terminal, ours
// goes raw for the duration (the container's terminal does the line editing), its size
// is passed on at the start and on every SIGWINCH, and it is restored on the way out.
// Without one, SIGINT/SIGTERM/SIGQUIT sent to us are passed to the command.
import CMinik
import Foundation
import MinikRuntime

enum ExecStreams {
    /// Copies until the command has exited and its output is drained; returns its exit
    /// code (128 + signal when it was killed), as a shell would.
    static func pump(_ p: ContainerExec) -> Int32 {
        var saved = termios()
        let raw = p.tty && isatty(0) == 1 && tcgetattr(0, &saved) == 0
        if raw {
            var t = saved
            cfmakeraw(&t)
            tcsetattr(0, TCSANOW, &t)
        }
        defer { if raw { tcsetattr(0, TCSANOW, &saved) } }
        var sources: [DispatchSourceSignal] = []
        if p.tty {
            signal(SIGWINCH, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
            s.setEventHandler {
                var rows: UInt16 = 0, cols: UInt16 = 0
                if minik_tty_size(0, &rows, &cols) == 0 { p.resize(rows: rows, cols: cols) }
            }
            s.resume()
            sources.append(s)
        } else {
            for sig in [SIGINT, SIGTERM, SIGQUIT] {
                signal(sig, SIG_IGN)
                let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                s.setEventHandler { kill(p.pid, sig) }
                s.resume()
                sources.append(s)
            }
        }
        defer { sources.forEach { $0.cancel() } }

        var readInput = p.stdin != nil
        var outputs: [(from: Int32, to: Int32)] = [(p.stdout, Int32(1))]
        if let e = p.stderr { outputs.append((e, Int32(2))) }
        // Input waits here while the command does not read it (a terminal's master is
        // non-blocking): its output keeps flowing meanwhile.
        var pending: [UInt8] = []
        var status: Int32 = 0
        var exited = false
        var buf = [UInt8](repeating: 0, count: 32768)
        while !outputs.isEmpty {
            var fds = outputs.map { pollfd(fd: $0.from, events: Int16(POLLIN), revents: 0) }
            let inputAt = fds.count
            if readInput && pending.isEmpty { fds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
            let pendingAt = fds.count
            if let input = p.stdin, !pending.isEmpty { fds.append(pollfd(fd: input, events: Int16(POLLOUT), revents: 0)) }
            // Once the command is gone, what is left is drained; a process it left behind
            // holding the stream does not keep us here.
            let n = poll(&fds, nfds_t(fds.count), exited ? 100 : 200)
            if n < 0 && errno != EINTR { break }
            if !exited {
                let r = waitpid(p.pid, &status, WNOHANG)
                if r == p.pid || (r < 0 && errno == ECHILD) { exited = true }
            }
            if n == 0 && exited { break }
            if n <= 0 { continue }
            if fds.count > inputAt, inputAt < pendingAt, fds[inputAt].revents != 0 {
                let got = read(0, &buf, buf.count)
                if got > 0 {
                    pending += buf[0..<got]
                } else if got == 0 || (errno != EINTR && errno != EAGAIN) {
                    p.closeStdin()
                    readInput = false
                }
            }
            if fds.count > pendingAt, fds[pendingAt].revents != 0, let input = p.stdin {
                let wrote = pending.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
                if wrote > 0 {
                    pending.removeFirst(wrote)
                } else if wrote < 0 && errno != EINTR && errno != EAGAIN {
                    pending = [] // the command closed its input
                    p.closeStdin()
                    readInput = false
                }
            }
            var closed: [Int32] = []
            for (i, o) in outputs.enumerated() where fds[i].revents != 0 {
                let got = read(o.from, &buf, buf.count)
                if got > 0 {
                    _ = writeAll(o.to, buf, got)
                } else if got == 0 || (errno != EINTR && errno != EAGAIN) {
                    closed.append(o.from) // EOF, or EIO: the terminal's last holder closed it
                }
            }
            outputs.removeAll { closed.contains($0.from) }
        }
        if !exited { while waitpid(p.pid, &status, 0) < 0 && errno == EINTR {} }
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }

    static func writeAll(_ fd: Int32, _ buf: [UInt8], _ count: Int) -> Bool {
        var off = 0
        while off < count {
            let n = buf[off..<count].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { usleep(1000); continue }
                return false
            }
            off += n
        }
        return true
    }
}
