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
    /// The master (tty) or the pipe's write end; -1 once closed.
    private var input: Int32
    private var inputClosed = false

    /// A terminal's master: the relay copies its output to `log` (the container's log
    /// FIFO, which it closes at the end); `stdin` says whether input is taken.
    init(master: Int32, log: Int32, stdin: Bool, stdinOnce: Bool) {
        tty = true
        self.stdinOnce = stdinOnce
        input = stdin ? dup(master) : -1
        if input >= 0 { _ = fcntl(input, F_SETFD, FD_CLOEXEC) }
        let t = Thread {
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(master, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
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
        input = pipe
    }

    /// Writes input for the container (blocking until it is taken); false once closed.
    public func write(_ bytes: [UInt8]) -> Bool {
        lock.lock()
        let fd = input
        lock.unlock()
        guard fd >= 0 else { return false }
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    /// The terminal's window size.
    public func resize(rows: UInt16, cols: UInt16) {
        lock.lock()
        defer { lock.unlock() }
        if tty && input >= 0 { _ = minik_pty_resize(input, rows, cols) }
    }

    /// An attach session's input ended: with stdinOnce the container's stdin ends too.
    public func inputEnded() {
        guard stdinOnce else { return }
        lock.lock()
        defer { lock.unlock() }
        guard !inputClosed, input >= 0 else { return }
        inputClosed = true
        if tty {
            var eof: UInt8 = 4
            _ = Glibc.write(input, &eof, 1)
        } else {
            Glibc.close(input)
            input = -1
        }
    }

    /// The container ended (or its pod went): the runtime lets go of its stdin.
    func close() {
        lock.lock()
        defer { lock.unlock() }
        if input >= 0 { Glibc.close(input) }
        input = -1
    }

    public var isOpen: Bool {
        lock.lock()
        defer { lock.unlock() }
        return input >= 0 && !inputClosed
    }
}
