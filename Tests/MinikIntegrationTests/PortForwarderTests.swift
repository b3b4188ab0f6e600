// Root integration tests of the port forwarder (kind's extraPortMappings) without a
// cluster: a scratch namespace stands in for the underlay, with TCP and UDP echo servers
// on its own 127.0.0.1; clients in the root namespace reach them through 127.0.0.1:hostPort.
import Foundation
import MinikRuntime
import MinikSpec
import Testing

extension RootTests {
@Suite("Port forwarding (root)", .serialized)
struct PortForwarderTests {
    static let nsName = "minik-pftest.u"
    static let echoPort = 7007
    static let loopback = IPv4Address(127, 0, 0, 1)

    @Test("TCP: bytes echoed through the underlay, half-close, taken port, stop frees the port")
    func tcp() throws {
        let ns = try Self.scratchNamespace()
        defer { Self.removeScratchNamespace() }
        let server = try Self.tcpEchoServer(in: ns)
        defer { Self.stopServer(server) }
        let port = try #require(Self.freePort())
        // Only the namespace's loopback has the echo server: the forwarder must go there.
        #expect(Self.connect(port: Self.echoPort) == nil, "an echo port answers in the root namespace")
        let fdsBefore = Self.openFDs()

        let fwd = PortForwarder(hostPort: port, proto: "TCP", targetIP: Self.loopback, targetPort: Self.echoPort, underlay: ns)
        try fwd.start()
        defer { fwd.stop() }

        // Several connections at once, each larger than the forwarder's buffers: the
        // echo server answers only after the client's EOF went through (half-close).
        let results = Results()
        let group = DispatchGroup()
        for i in 0..<4 {
            group.enter()
            Thread {
                let payload = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) })
                results.set(i, Self.tcpRoundTrip(port: port, payload: payload) == payload)
                group.leave()
            }.start()
        }
        #expect(group.wait(timeout: .now() + 20) == .success, "TCP clients did not finish")
        #expect(results.all(4), "some TCP clients did not get their bytes back")

        // A second forwarder on the same port fails and names it.
        let second = PortForwarder(hostPort: port, proto: "TCP", targetIP: Self.loopback, targetPort: Self.echoPort, underlay: ns)
        do {
            try second.start()
            second.stop()
            Issue.record("a second forwarder on 127.0.0.1:\(port)/TCP started")
        } catch {
            #expect(error.description == "127.0.0.1:\(port)/TCP: Address already in use")
        }

        // stop() ends open connections too: a client that holds one sees it closed.
        let held = try #require(Self.connect(port: port))
        defer { close(held) }
        #expect(Self.writeAll(held, Data("hello".utf8)))
        fwd.stop()
        fwd.stop() // idempotent
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(held, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        let n = recv(held, &byte, 1, 0)
        #expect(n == 0 || (n < 0 && errno == ECONNRESET), "connection still open after stop (recv \(n), errno \(errno))")
        // Every fd of the forwarder is closed (the held client socket is the test's).
        #expect(Self.settles(at: fdsBefore + 1), "fds left open after stop: \(Self.openFDs() - fdsBefore - 1)")

        // The port is free: nothing answers there, and it can be bound again.
        #expect(Self.connect(port: port) == nil, "something still listens on 127.0.0.1:\(port)")
        #expect(Self.canBind(port: port, udp: false), "127.0.0.1:\(port)/TCP still taken after stop")
        let again = PortForwarder(hostPort: port, proto: "TCP", targetIP: Self.loopback, targetPort: Self.echoPort, underlay: ns)
        try again.start()
        again.stop()
    }

    @Test("UDP: each client gets its own echo, taken port, stop frees the port")
    func udp() throws {
        let ns = try Self.scratchNamespace()
        defer { Self.removeScratchNamespace() }
        let server = try Self.udpEchoServer(in: ns)
        defer { Self.stopServer(server) }
        let port = try #require(Self.freePort())
        let fdsBefore = Self.openFDs()

        let fwd = PortForwarder(hostPort: port, proto: "UDP", targetIP: Self.loopback, targetPort: Self.echoPort, underlay: ns)
        try fwd.start()
        defer { fwd.stop() }

        // Two clients, interleaved: replies go to the client that asked.
        let a = try #require(Self.udpClient())
        let b = try #require(Self.udpClient())
        defer { close(a); close(b) }
        for round in 0..<3 {
            #expect(Self.udpEcho(a, port: port, "a-\(round)") == "a-\(round)")
            #expect(Self.udpEcho(b, port: port, "b-\(round)") == "b-\(round)")
        }

        let second = PortForwarder(hostPort: port, proto: "UDP", targetIP: Self.loopback, targetPort: Self.echoPort, underlay: ns)
        do {
            try second.start()
            second.stop()
            Issue.record("a second forwarder on 127.0.0.1:\(port)/UDP started")
        } catch {
            #expect(error.description == "127.0.0.1:\(port)/UDP: Address already in use")
        }

        fwd.stop()
        fwd.stop()
        // The listener and both flows are closed (a and b are the test's).
        #expect(Self.settles(at: fdsBefore + 2), "fds left open after stop: \(Self.openFDs() - fdsBefore - 2)")
        #expect(Self.canBind(port: port, udp: true), "127.0.0.1:\(port)/UDP still taken after stop")
    }

    @Test("Bad mappings are refused before binding")
    func badMappings() throws {
        let ns = try Self.scratchNamespace()
        defer { Self.removeScratchNamespace() }
        for (port, proto) in [(0, "TCP"), (70000, "TCP"), (39080, "SCTP")] {
            let f = PortForwarder(hostPort: port, proto: proto, targetIP: Self.loopback, targetPort: 80, underlay: ns)
            #expect(throws: RuntimeError.self) { try f.start() }
            f.stop()
        }
    }

    // MARK: helpers

    /// Collects per-client outcomes from client threads.
    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var ok: [Int: Bool] = [:]
        func set(_ i: Int, _ v: Bool) { lock.lock(); ok[i] = v; lock.unlock() }
        func all(_ n: Int) -> Bool { lock.lock(); defer { lock.unlock() }; return (0..<n).allSatisfy { ok[$0] == true } }
    }

    struct Server {
        let fd: Int32
        let done: DispatchSemaphore
    }

    static func openFDs() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).count
    }

    /// Waits up to 2 s for the process to hold `count` fds (echo server threads close
    /// theirs a moment after the forwarder's side went away).
    static func settles(at count: Int) -> Bool {
        for _ in 0..<200 {
            if openFDs() == count { return true }
            usleep(10_000)
        }
        return false
    }

    static func scratchNamespace() throws -> NetNamespace {
        try NetNamespace.prepareDirectory()
        try? NetNamespace.remove(nsName)
        let ns = try NetNamespace.create(nsName)
        try ns.netlink.linkSetUp(index: 1)
        return ns
    }

    static func removeScratchNamespace() {
        try? NetNamespace.remove(nsName)
        NetNamespace.releaseDirectoryIfIdle()
    }

    static func address(_ port: Int) -> sockaddr_in { loopback.socketAddress(port: port) }

    static func bind(_ fd: Int32, port: Int) -> Bool {
        var a = address(port)
        return withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    static func canBind(port: Int, udp: Bool) -> Bool {
        let fd = socket(AF_INET, Int32((udp ? SOCK_DGRAM : SOCK_STREAM).rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var one: Int32 = 1
        if !udp { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
        return bind(fd, port: port)
    }

    /// A port of the range (from 39080 up) that is free on 127.0.0.1 for both TCP and UDP.
    static func freePort(in range: Range<Int> = 39080..<39180) -> Int? {
        range.first { canBind(port: $0, udp: false) && canBind(port: $0, udp: true) }
    }

    /// A TCP echo server on 127.0.0.1:echoPort inside ns: each connection gets back what it
    /// sent once it has sent all (EOF), then is closed.
    static func tcpEchoServer(in ns: NetNamespace) throws -> Server {
        let fd = try ns.socket(domain: AF_INET, type: Int32(SOCK_STREAM.rawValue), protocol: 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, port: echoPort), listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            throw RuntimeError.system("echo server", errno: e)
        }
        let done = DispatchSemaphore(value: 0)
        Thread {
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { if errno == EINTR { continue }; break } // shut down: stop
                Thread {
                    var all = Data()
                    var buf = [UInt8](repeating: 0, count: 65536)
                    while true {
                        let n = read(c, &buf, buf.count)
                        if n < 0 && errno == EINTR { continue }
                        if n <= 0 { break }
                        all.append(contentsOf: buf[0..<n])
                    }
                    _ = writeAll(c, all)
                    close(c)
                }.start()
            }
            close(fd)
            done.signal()
        }.start()
        return Server(fd: fd, done: done)
    }

    /// A UDP echo server on 127.0.0.1:echoPort inside ns.
    static func udpEchoServer(in ns: NetNamespace) throws -> Server {
        let fd = try ns.socket(domain: AF_INET, type: Int32(SOCK_DGRAM.rawValue), protocol: 0)
        guard bind(fd, port: echoPort) else {
            let e = errno
            close(fd)
            throw RuntimeError.system("echo server", errno: e)
        }
        let done = DispatchSemaphore(value: 0)
        Thread {
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                var from = sockaddr_in()
                var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                let n = withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buf, buf.count, 0, $0, &len) }
                }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break } // shut down: stop
                _ = withUnsafePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, buf, n, 0, $0, len) }
                }
            }
            close(fd)
            done.signal()
        }.start()
        return Server(fd: fd, done: done)
    }

    /// Wakes the server's blocked accept or recvfrom (Linux does so on shutdown) and waits
    /// for its thread to close the socket.
    static func stopServer(_ s: Server) {
        shutdown(s.fd, Int32(SHUT_RDWR))
        _ = s.done.wait(timeout: .now() + 5)
    }

    /// A TCP connection from the root namespace to 127.0.0.1:port; nil when refused.
    static func connect(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var a = address(port)
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc < 0 { close(fd); return nil }
        return fd
    }

    static func writeAll(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = send(fd, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n < 0 { if errno == EINTR { continue }; return false }
                off += n
            }
            return true
        }
    }

    /// Sends payload from one thread and half-closes, reads everything back until EOF on
    /// this one; nil on any error.
    static func tcpRoundTrip(port: Int, payload: Data) -> Data? {
        guard let fd = connect(port: port) else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let wrote = DispatchSemaphore(value: 0)
        let sent = Results()
        Thread {
            sent.set(0, writeAll(fd, payload) && shutdown(fd, Int32(SHUT_WR)) == 0)
            wrote.signal()
        }.start()
        var got = Data()
        var buf = [UInt8](repeating: 0, count: 65536)
        var ok = true
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { ok = false; break }
            if n == 0 { break }
            got.append(contentsOf: buf[0..<n])
        }
        wrote.wait()
        return ok && sent.all(1) ? got : nil
    }

    static func udpClient() -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var tv = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// Sends text to 127.0.0.1:port and returns the reply (nil on timeout).
    static func udpEcho(_ fd: Int32, port: Int, _ text: String) -> String? {
        var a = address(port)
        let bytes = Array(text.utf8)
        let sent = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard sent == bytes.count else { return nil }
        var buf = [UInt8](repeating: 0, count: 2048)
        let n = recv(fd, &buf, buf.count, 0)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }
}
}
