// A command run inside a container for someone outside it (`minik exec`), wired as
// runc and kubectl wire it: the process never gets a file descriptor of the caller's.
// Without a terminal it gets pipes, which the caller copies; with one it gets a new
// pseudo-terminal allocated in the container's own devpts (so `tty` inside says
// /dev/pts/N of the container), in a new session with that terminal as its controlling
// one. A terminal fd of the caller's inside a container would let its code push input
// into the caller's shell (TIOCSTI) or open it again as /dev/tty.
import CMinik
import Foundation

public final class ContainerExec: @unchecked Sendable {
    public let pid: pid_t
    /// Where the caller writes the command's input (nil without stdin).
    public private(set) var stdin: Int32?
    /// The command's output: its stdout pipe, or the terminal's master side.
    public private(set) var stdout: Int32
    /// Its stderr pipe (nil with a terminal: both streams come through the master).
    public private(set) var stderr: Int32?
    /// True when stdout is a terminal's master (resize it with `resize`).
    public let tty: Bool

    /// Starts argv in the container `entry` with pipes, or with a new terminal of the
    /// given size when tty is set.
    public init(_ argv: [String], in entry: ContainerEntry, env: [String], stdin wantStdin: Bool, tty: Bool,
                rows: UInt16 = 0, cols: UInt16 = 0) throws(RuntimeError) {
        self.tty = tty
        if tty {
            var master: Int32 = -1, slave: Int32 = -1
            let rc = minik_pty_open(entry.namespaceFDs[3], rows, cols, &master, &slave)
            if rc < 0 { throw .system("allocate a terminal in the container", errno: -rc) }
            let pid = Children.spawn { entry.spawn(argv, env: env, stdin: slave, stdout: slave, stderr: slave, tty: true) }
            close(slave)
            if pid < 0 { close(master); throw Self.failure(argv, pid) }
            self.pid = pid
            stdin = wantStdin ? master : nil
            stdout = master
            stderr = nil
            return
        }
        // [stdout, stderr, stdin]: the child gets .w, .w and .r; we keep the others.
        var pipes: [(r: Int32, w: Int32)] = []
        for _ in 0..<(wantStdin ? 3 : 2) {
            var fds: [Int32] = [-1, -1]
            if pipe(&fds) < 0 {
                let e = errno
                pipes.forEach { close($0.r); close($0.w) }
                throw .system("pipe", errno: e)
            }
            fds.forEach { _ = fcntl($0, F_SETFD, FD_CLOEXEC) }
            pipes.append((fds[0], fds[1]))
        }
        let pid = Children.spawn { entry.spawn(argv, env: env, stdin: wantStdin ? pipes[2].r : -1, stdout: pipes[0].w, stderr: pipes[1].w) }
        close(pipes[0].w)
        close(pipes[1].w)
        if wantStdin { close(pipes[2].r) }
        if pid < 0 {
            close(pipes[0].r)
            close(pipes[1].r)
            if wantStdin { close(pipes[2].w) }
            throw Self.failure(argv, pid)
        }
        self.pid = pid
        stdout = pipes[0].r
        stderr = pipes[1].r
        stdin = wantStdin ? pipes[2].w : nil
        // Written when poll says so, never blocking: output must keep flowing meanwhile.
        if let w = stdin { _ = fcntl(w, F_SETFL, fcntl(w, F_GETFL) | O_NONBLOCK) }
    }

    static func failure(_ argv: [String], _ pid: pid_t) -> RuntimeError {
        if pid == -ENOENT { return .state("exec: \"\(argv[0])\": executable file not found in $PATH") }
        return .system("exec \(argv[0])", errno: -pid)
    }

    /// Closes the command's input (EOF); with a terminal, sends the EOF character instead.
    public func closeStdin() {
        guard let fd = stdin else { return }
        if tty {
            var eof: UInt8 = 4 // ^D at the start of a line
            _ = write(fd, &eof, 1)
        } else {
            close(fd)
        }
        stdin = nil
    }

    /// Waits for the command to exit; its wait status. In the supervisor its reaper
    /// hands the status over (Children); elsewhere this waits for the child itself.
    public func wait() -> Int32 { Children.wait(pid, deadline: nil).status }

    /// Hands the descriptors over to someone who closes them (an event loop's channels).
    /// With a terminal, stdin (when asked for) and stdout are the same master.
    public func takeDescriptors() -> (stdin: Int32?, stdout: Int32, stderr: Int32?) {
        let taken = (stdin, stdout, stderr)
        stdin = nil
        stdout = -1
        stderr = nil
        return taken
    }

    /// New window size for a terminal (its master side, which the caller may hold).
    public static func resize(master: Int32, rows: UInt16, cols: UInt16) { _ = minik_pty_resize(master, rows, cols) }

    /// New window size for the terminal.
    public func resize(rows: UInt16, cols: UInt16) {
        if tty { _ = minik_pty_resize(stdout, rows, cols) }
    }

    deinit {
        if let s = stdin, !tty { close(s) }
        if stdout >= 0 { close(stdout) }
        if let e = stderr { close(e) }
    }
}
