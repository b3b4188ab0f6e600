// Named network namespaces, compatible with `ip netns`: each is pinned by a bind mount
// under /run/netns (a shared mount of itself, as iproute2 sets it up), so users can
// `ip netns exec` into any node or pod. All setns/unshare work happens in CMinik on
// throwaway threads; the netlink socket of a namespace is opened there once and then
// used from anywhere.
import CMinik
import Foundation
import MinikNetlink
import MinikSpec

public enum RuntimeError: Error, CustomStringConvertible {
    case system(String, errno: Int32)
    case netlink(NetlinkError, context: String)
    case spec(String)
    case state(String)

    public var description: String {
        switch self {
        case .system(let what, let e): return "\(what): \(String(cString: strerror(e)))"
        case .netlink(let e, let ctx): return "\(ctx): \(e)"
        case .spec(let m): return m
        case .state(let m): return m
        }
    }
}

extension IPv4Address {
    /// The kernel's sockaddr_in for this address and a port.
    public func socketAddress(port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = UInt16(port).bigEndian
        a.sin_addr.s_addr = networkOrder
        return a
    }
}

/// Runs a netlink call and names where it failed.
@inline(__always)
func nl<T>(_ context: @autoclosure () -> String, _ body: () throws(NetlinkError) -> T) throws(RuntimeError) -> T {
    do { return try body() } catch { throw .netlink(error, context: context()) }
}

public final class NetNamespace: @unchecked Sendable {
    public let name: String
    public let path: String
    /// An open fd of the namespace (O_CLOEXEC).
    public let fd: Int32
    private var _netlink: NetlinkSocket?
    private let lock = NSLock()

    private init(name: String, fd: Int32) {
        self.name = name
        self.path = Naming.netnsPath(name)
        self.fd = fd
    }

    deinit { close(fd) }

    /// Makes /run/minik (state) and /run/netns (pins) ready, each a mount point: a tmpfs
    /// when minik finds it missing or empty (so nothing of a cluster touches a disk, as on
    /// hosts where /run is a tmpfs), a shared mount for /run/netns as `ip netns add` makes
    /// it. What minik had to create is recorded, so the last `down` can undo it.
    public static func prepareDirectory() throws(RuntimeError) {
        let state = minik_tmpfs_dir_prepare(Naming.stateRoot, "0700", 0)
        if state < 0 { throw .system("prepare \(Naming.stateRoot)", errno: -state) }
        if state > 0 { record(state, in: stateMarker) }
        let rc = minik_netns_dir_prepare(Naming.netnsDir)
        if rc < 0 { throw .system("prepare \(Naming.netnsDir)", errno: -rc) }
        if rc > 0 { record(rc, in: hostMarker) }
    }

    private static func record(_ made: Int32, in marker: String) {
        let previous = Int32((try? String(contentsOfFile: marker, encoding: .utf8)).flatMap { Int32($0) } ?? 0)
        try? String(previous | made).write(toFile: marker, atomically: true, encoding: .utf8)
    }

    static var hostMarker: String { "\(Naming.stateRoot)/.netns-made-by-minik" }
    static var stateMarker: String { "\(Naming.stateRoot)/.state-made-by-minik" }

    /// When no cluster is left and /run/netns holds nothing, undo what prepareDirectory
    /// did to the host (mount, directory) and remove /run/minik: the machine is as found.
    public static func releaseDirectoryIfIdle() {
        let clusters = ((try? FileManager.default.contentsOfDirectory(atPath: Naming.stateRoot)) ?? []).filter { !$0.hasPrefix(".") }
        guard clusters.isEmpty else { return }
        let pins = (try? FileManager.default.contentsOfDirectory(atPath: Naming.netnsDir)) ?? []
        if pins.isEmpty, let text = try? String(contentsOfFile: hostMarker, encoding: .utf8), let made = Int32(text) {
            if minik_netns_dir_release(Naming.netnsDir, made) == 0 { unlink(hostMarker) }
        }
        let left = (try? FileManager.default.contentsOfDirectory(atPath: Naming.stateRoot)) ?? []
        if left == [".state-made-by-minik"], let text = try? String(contentsOfFile: stateMarker, encoding: .utf8), let made = Int32(text) {
            unlink(stateMarker)
            if minik_netns_dir_release(Naming.stateRoot, made) != 0 { record(made, in: stateMarker) }
        } else if left.isEmpty {
            rmdir(Naming.stateRoot)
        }
    }

    /// `ip netns add NAME`: a new, empty namespace pinned under /run/netns.
    public static func create(_ name: String) throws(RuntimeError) -> NetNamespace {
        var fd: Int32 = -1
        let rc = minik_netns_create(Naming.netnsPath(name), &fd)
        if rc < 0 { throw .system("create network namespace \(name)", errno: -rc) }
        return NetNamespace(name: name, fd: fd)
    }

    /// Pins the network namespace of a running process under /run/netns/NAME.
    public static func pin(pid: pid_t, as name: String) throws(RuntimeError) -> NetNamespace {
        let source = "/proc/\(pid)/ns/net"
        let fd = Glibc.open(source, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .system("open \(source)", errno: errno) }
        let rc = minik_netns_pin(source, Naming.netnsPath(name))
        if rc < 0 {
            close(fd)
            throw .system("pin network namespace of pid \(pid) as \(name)", errno: -rc)
        }
        return NetNamespace(name: name, fd: fd)
    }

    /// Opens an existing pinned namespace.
    public static func open(_ name: String) throws(RuntimeError) -> NetNamespace {
        let fd = Glibc.open(Naming.netnsPath(name), O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .system("open network namespace \(name)", errno: errno) }
        return NetNamespace(name: name, fd: fd)
    }

    /// `ip netns del NAME`: unmounts and removes the pin; the kernel frees the namespace
    /// (and every link in it) once no process or fd holds it. Quiet if already gone.
    public static func remove(_ name: String) throws(RuntimeError) {
        let rc = minik_netns_unpin(Naming.netnsPath(name))
        if rc < 0 { throw .system("remove network namespace \(name)", errno: -rc) }
    }

    /// Names of pinned namespaces starting with prefix.
    public static func list(prefix: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: Naming.netnsDir)) ?? []).filter { $0.hasPrefix(prefix) }.sorted()
    }

    /// The namespace's rtnetlink socket, opened on first use.
    public var netlink: NetlinkSocket {
        get throws(RuntimeError) {
            lock.lock()
            defer { lock.unlock() }
            if let s = _netlink { return s }
            let s = try nl("netlink socket in \(name)") { () throws(NetlinkError) in try NetlinkSocket(namespaceFD: fd) }
            _netlink = s
            return s
        }
    }

    /// Drops the netlink socket (a pod's is needed only while it is set up).
    public func closeNetlink() {
        lock.lock()
        _netlink = nil
        lock.unlock()
    }

    /// Writes a sysctl of this namespace, e.g. net/ipv4/ip_forward.
    public func sysctl(_ key: String, _ value: String) throws(RuntimeError) {
        let rc = minik_sysctl_in_netns(fd, "/proc/sys/\(key)", value)
        if rc < 0 { throw .system("sysctl \(key)=\(value) in \(name)", errno: -rc) }
    }

    /// A socket inside this namespace.
    public func socket(domain: Int32, type: Int32, protocol proto: Int32) throws(RuntimeError) -> Int32 {
        let fd = minik_socket_in_netns(fd, domain, type, proto)
        if fd < 0 { throw .system("socket in \(name)", errno: -fd) }
        return fd
    }

    public enum Connection {
        case connected(Int32)
        /// The errno: ETIMEDOUT after the timeout, ECANCELED when abortFD became readable.
        case failed(Int32)
    }

    /// A TCP connection from inside this namespace to ip:port, within timeoutMs; the fd is
    /// non-blocking. abortFD (a stop pipe) ends the wait early when it becomes readable.
    public func connectTCP(to ip: IPv4Address, port: Int, timeoutMs: Int32, abortFD: Int32 = -1) -> Connection {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd: Int32
        do { fd = try socket(domain: AF_INET, type: type, protocol: 0) } catch {
            if case .system(_, let e) = error { return .failed(e) }
            return .failed(EINVAL)
        }
        var addr = ip.socketAddress(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc == 0 { return .connected(fd) }
        guard errno == EINPROGRESS else { let e = errno; close(fd); return .failed(e) }
        var fds = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0), pollfd(fd: abortFD, events: Int16(POLLIN), revents: 0)]
        var n: Int32
        repeat { n = poll(&fds, abortFD >= 0 ? 2 : 1, timeoutMs) } while n < 0 && errno == EINTR
        var err: Int32 = n == 0 ? ETIMEDOUT : (n < 0 ? errno : 0)
        if n > 0 && fds[1].revents != 0 { err = ECANCELED }
        if err == 0 {
            var len = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 { err = errno }
        }
        if err != 0 { close(fd); return .failed(err) }
        return .connected(fd)
    }

    /// The namespace's inode: processes whose /proc/PID/ns/net points at it live in it.
    public static func inode(path: String) -> UInt64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt64(st.st_ino)
    }
}
