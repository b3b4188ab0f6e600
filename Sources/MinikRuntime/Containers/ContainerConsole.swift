// The stdin of a container started with `stdin: true` or `tty: true`, which
// `kubectl attach` (and `kubectl run -it`) writes to, as containerd's shim holds it:
// - tty: the container runs on a terminal of its own devpts (CMinik hands the master
//   over through a console socket, as runc does); a relay thread copies what the
//   terminal prints into the container's log FIFO, so `kubectl logs` and attach see it;
//   input and window sizes go to the master.
// - stdin without tty: a pipe whose write end the runtime keeps.
// stdinOnce: the first attach session that ends closes the container's stdin for good
// (its EOF; ^D on a terminal).
// What the runtime does not do: keep the console across a supervisor's death. The
// master and the pipe die with it, and the container sees a hang-up or EOF.
import CMinik
import Foundation

public final class ContainerConsole: @unchecked Sendable {
    public let tty: Bool
    public let stdinOnce: Bool
    private let lock = NSLock()
    /// The master (tty, when it takes input) or the pipe's write end, non-blocking; -1
    /// once closed. Writers use a duplicate, so a close meanwhile cannot redirect them.
    private var input: Int32
    /// The master for window sizes (tty), -1 otherwise or once closed.
    private var sizer: Int32
    private var inputClosed = false
    /// A writer that makes no progress for this long gives up (a container that never
    /// reads its stdin must not hold an attach's input queue for ever).
    static let stallLimit: TimeInterval = 10

    /// A terminal's master: the relay copies its output to `log` (the container's log
    /// FIFO, which it closes at the end); `stdin` says whether input is taken.
    init(master: Int32, log: Int32, stdin: Bool, stdinOnce: Bool) {
        tty = true
        self.stdinOnce = stdinOnce
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
        input = stdin ? fcntl(master, F_DUPFD_CLOEXEC, 0) : -1
        sizer = fcntl(master, F_DUPFD_CLOEXEC, 0)
        let t = Thread {
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                var p = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, -1) < 0 && errno != EINTR { break }
                let n = read(master, &buf, buf.count)
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                // EIO: the container's side is closed (it ended).
                if n <= 0 { break }
                var off = 0
                while off < n {
                    let w = buf[off..<n].withUnsafeBytes { Glibc.write(log, $0.baseAddress, $0.count) }
                    if w < 0 && errno == EINTR { continue }
                    if w <= 0 { break }
                    off += w
                }
            }
            Glibc.close(master)
            Glibc.close(log)
        }
        t.name = "container-console"
        t.start()
    }

    /// The write end of the container's stdin pipe.
    init(pipe: Int32, stdinOnce: Bool) {
        tty = false
        self.stdinOnce = stdinOnce
        _ = fcntl(pipe, F_SETFL, fcntl(pipe, F_GETFL) | O_NONBLOCK)
        input = pipe
        sizer = -1
    }

    /// A duplicate of the input for one writer, or -1.
    private func borrowInput() -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        guard input >= 0, !inputClosed else { return -1 }
        return fcntl(input, F_DUPFD_CLOEXEC, 0)
    }

    /// Writes input for the container, waiting while it does not read (at most
    /// stallLimit without progress); false when it was not all taken.
    public func write(_ bytes: [UInt8]) -> Bool {
        let fd = borrowInput()
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var off = 0
        var progress = Date()
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                off += n
                progress = Date()
                continue
            }
            guard n < 0, errno == EINTR || errno == EAGAIN else { return false }
            if Date().timeIntervalSince(progress) > Self.stallLimit || !isOpen { return false }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&p, 1, 200)
        }
        return true
    }

    /// The terminal's window size.
    public func resize(rows: UInt16, cols: UInt16) {
        lock.lock()
        defer { lock.unlock() }
        if sizer >= 0 { _ = minik_pty_resize(sizer, rows, cols) }
    }

    /// An attach session's input ended: with stdinOnce the container's stdin ends too.
    public func inputEnded() {
        guard stdinOnce else { return }
        if tty {
            // ^D at the start of a line: the terminal's EOF (its master stays open).
            let fd = borrowInput()
            guard fd >= 0 else { return }
            var eof: UInt8 = 4
            _ = Glibc.write(fd, &eof, 1)
            Glibc.close(fd)
        }
        lock.lock()
        defer { lock.unlock() }
        guard !inputClosed else { return }
        inputClosed = true
        if !tty && input >= 0 {
            Glibc.close(input)
            input = -1
        }
    }

    /// The container ended (or its pod went): the runtime lets go of its stdin.
    func close() {
        lock.lock()
        defer { lock.unlock() }
        if input >= 0 { Glibc.close(input) }
        if sizer >= 0 { Glibc.close(sizer) }
        input = -1
        sizer = -1
    }

    public var isOpen: Bool {
        lock.lock()
        defer { lock.unlock() }
        return input >= 0 && !inputClosed
    }
}
