// Container logs, kept as kubelet keeps them: <attempt>.log per container run, rotated at
// containerLogMaxSize (10 MiB) into <attempt>.log.<yyyyMMdd-HHmmss>, at most
// containerLogMaxFiles (5) files per container, and of earlier runs only the previous
// one (for `logs --previous`). A container that writes 150 MB/s must not fill the tmpfs
// the cluster's state lives on.
//
// As with containerd's shim, the container does not write the file itself: its stdout
// and stderr are a FIFO (<container dir>/log.fifo) that the supervisor's copier drains
// into the files, which is what makes rotation exact. The container holds the FIFO open
// for reading and writing, so it never gets EPIPE: if the supervisor dies, a container
// that keeps writing blocks once the pipe's 64 KiB are full (Docker's blocking log mode)
// until a new supervisor opens the FIFO again and drains it.
import Foundation
import MinikSpec

public final class ContainerLogs: @unchecked Sendable {
    public static let maxSize = 10 * 1024 * 1024
    public static let maxFiles = 5

    struct Stream {
        var fifo: Int32
        var file: Int32
        var path: String
        var size: Int
    }

    private let lock = NSLock()
    private var streams: [String: Stream] = [:]
    /// Who follows a container's output live (attach), per container key.
    private var listeners: [String: [Int: @Sendable ([UInt8]) -> Void]] = [:]
    private var nextListener = 0
    private var wake: [Int32] = [-1, -1]
    private var started = false

    public init() {}

    /// The FIFO of a container, made if missing.
    public static func fifo(inContainerDir dir: String) throws(RuntimeError) -> String {
        let path = "\(dir)/log.fifo"
        if mkfifo(path, 0o600) < 0 && errno != EEXIST { throw .system("mkfifo \(path)", errno: errno) }
        return path
    }

    /// Copies the FIFO of container `key` into logPath from now on (a new attempt): what
    /// the previous attempt left in the pipe goes to its own file first. Files of attempts
    /// before the previous one are removed. Returns an fd for the container's stdout and
    /// stderr (O_RDWR on the FIFO), which the caller closes once the container has it.
    public func attach(_ key: String, fifo path: String, logPath: String, attempt: Int) throws(RuntimeError) -> Int32 {
        let writer = open(path, O_RDWR | O_CLOEXEC)
        if writer < 0 { throw .system("open \(path)", errno: errno) }
        do { try resume(key, fifo: path, logPath: logPath) } catch { close(writer); throw error }
        Self.prune(directory: (logPath as NSString).deletingLastPathComponent, keepingFrom: attempt - 1)
        return writer
    }

    /// Copies the FIFO of a container that runs already (adopted from a supervisor that
    /// died) into logPath, appending.
    public func resume(_ key: String, fifo path: String, logPath: String) throws(RuntimeError) {
        startIfNeeded()
        let file = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        if file < 0 { throw .system("open \(logPath)", errno: errno) }
        lock.lock()
        var stream = streams[key]
        if stream == nil {
            // Read-write: the FIFO always has a writer (us), so poll never sees a hang-up.
            let reader = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
            if reader < 0 {
                let e = errno
                lock.unlock()
                close(file)
                throw .system("open \(path)", errno: e)
            }
            stream = Stream(fifo: reader, file: -1, path: logPath, size: 0)
        }
        var s = stream!
        drain(&s)
        if s.file >= 0 { close(s.file) }
        var st = stat()
        s.file = file
        s.path = logPath
        s.size = fstat(file, &st) == 0 ? Int(st.st_size) : 0
        streams[key] = s
        lock.unlock()
        poke()
    }

    /// Calls `body` (on the copier's thread, which it must not hold up) with each chunk the
    /// container `key` ("ns/pod/container") writes from now on; returns a token for `unlisten`.
    public func listen(_ key: String, _ body: @escaping @Sendable ([UInt8]) -> Void) -> Int {
        lock.lock()
        defer { lock.unlock() }
        nextListener += 1
        listeners[key, default: [:]][nextListener] = body
        return nextListener
    }

    public func unlisten(_ key: String, _ token: Int) {
        lock.lock()
        defer { lock.unlock() }
        listeners[key]?[token] = nil
        if listeners[key]?.isEmpty == true { listeners[key] = nil }
    }

    /// Stops copying for a container (its pod is gone); what is in the pipe is written first.
    public func detach(_ key: String) {
        lock.lock()
        if var s = streams.removeValue(forKey: key) {
            drain(&s)
            close(s.fifo)
            if s.file >= 0 { close(s.file) }
        }
        lock.unlock()
        poke()
    }

    /// Every stream of a pod ("ns/pod/").
    public func detach(pod key: String) {
        lock.lock()
        let keys = streams.keys.filter { $0.hasPrefix(key + "/") }
        lock.unlock()
        keys.forEach { detach($0) }
    }

    /// Writes what the container's FIFO holds now (a pipe's worth, at most 1 MiB: a writer
    /// that keeps refilling it must not keep us here); the caller holds the lock.
    private func drain(_ s: inout Stream) {
        var buf = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<16 {
            let n = read(s.fifo, &buf, buf.count)
            if n <= 0 { return }
            copy(buf, n, into: &s)
        }
    }

    /// Appends, rotating when the file would pass maxSize: after the last whole line that
    /// fits (so a file starts with a line, as kubelet's do), or at maxSize for a line
    /// longer than that.
    private func copy(_ buf: [UInt8], _ count: Int, into s: inout Stream) {
        var off = 0
        while off < count {
            if s.size >= Self.maxSize { rotate(&s) }
            var chunk = min(count - off, Self.maxSize - s.size)
            if chunk < count - off, s.size > 0 {
                guard let nl = buf[off..<(off + chunk)].lastIndex(of: 0x0a) else { rotate(&s); continue }
                chunk = nl + 1 - off
            }
            let n = buf[off..<(off + chunk)].withUnsafeBytes { write(s.file, $0.baseAddress, $0.count) }
            if n <= 0 { return } // the disk is full: drop the output rather than stall the container
            off += n
            s.size += n
        }
    }

    private func rotate(_ s: inout Stream) {
        close(s.file)
        var now = time(nil)
        var t = tm()
        gmtime_r(&now, &t)
        var stamp = String(format: "%04d%02d%02d-%02d%02d%02d", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
        // Two rotations in one second: keep both.
        var n = 0
        while FileManager.default.fileExists(atPath: "\(s.path).\(stamp)") { n += 1; stamp = stamp.prefix(15) + ".\(n)" }
        rename(s.path, "\(s.path).\(stamp)")
        s.file = open(s.path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0o640)
        s.size = 0
        let name = (s.path as NSString).lastPathComponent
        let dir = (s.path as NSString).deletingLastPathComponent
        let rotated = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(name + ".") }.sorted()
        for old in rotated.dropLast(Self.maxFiles - 1) { unlink("\(dir)/\(old)") }
    }

    /// Removes the files of attempts before `first` in a container's log directory.
    static func prune(directory: String, keepingFrom first: Int) {
        for f in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            guard let attempt = Int(f.prefix { $0.isNumber }), f.dropFirst(String(attempt).count).hasPrefix(".log"),
                  attempt < first else { continue }
            unlink("\(directory)/\(f)")
        }
    }

    private func startIfNeeded() {
        lock.lock()
        defer { lock.unlock() }
        guard !started else { return }
        started = true
        _ = pipe(&wake)
        for fd in wake { _ = fcntl(fd, F_SETFL, O_NONBLOCK); _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let t = Thread { [self] in loop() }
        t.name = "container-logs"
        t.start()
    }

    private func poke() {
        guard wake[1] >= 0 else { return }
        var b: UInt8 = 1
        _ = write(wake[1], &b, 1)
    }

    /// One thread copies every container's FIFO.
    private func loop() {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            lock.lock()
            let keys = Array(streams.keys)
            var fds = [pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0)]
            fds += keys.map { pollfd(fd: streams[$0]!.fifo, events: Int16(POLLIN), revents: 0) }
            lock.unlock()
            if poll(&fds, nfds_t(fds.count), -1) <= 0 { continue }
            if fds[0].revents != 0 { while read(wake[0], &buf, buf.count) > 0 {} }
            lock.lock()
            for (i, key) in keys.enumerated() where fds[i + 1].revents & Int16(POLLIN) != 0 {
                guard var s = streams[key], s.fifo == fds[i + 1].fd else { continue }
                let n = read(s.fifo, &buf, buf.count)
                if n > 0 {
                    copy(buf, n, into: &s)
                    if let ls = listeners[key] {
                        let chunk = Array(buf[0..<n])
                        for l in ls.values { l(chunk) }
                    }
                }
                streams[key] = s
            }
            lock.unlock()
        }
    }
}
