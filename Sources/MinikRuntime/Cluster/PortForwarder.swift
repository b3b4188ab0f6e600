// Publishes one of kind's `extraPortMappings`: the equivalent of the docker-proxy that
// kind's node containers get. It listens in the supervisor's own (root) network namespace
// on 127.0.0.1:hostPort and relays every TCP connection or UDP flow to nodeIP:containerPort
// over sockets created inside the cluster's underlay namespace, so traffic reaches the node
// from the underlay bridge, as docker-proxy's reaches a node from the docker gateway.
// It listens on loopback only, never on another address: nothing of a cluster is exposed
// beyond this host, and the root namespace gets no address, route or link.
//
// Plain threads and poll(): one thread accepts TCP connections, one thread per connection
// relays it, one thread serves every UDP flow. All I/O is non-blocking and every poll also
// watches a stop pipe, so stop() ends every thread promptly and waits for them.
import Foundation
import MinikSpec

public final class PortForwarder: @unchecked Sendable {
    public let hostPort: Int
    public let proto: String
    public let targetIP: IPv4Address
    public let targetPort: Int
    private let underlay: NetNamespace

    /// Idle UDP flows are dropped after this long (docker-proxy's UDP conntrack timeout).
    static let udpFlowTimeout: TimeInterval = 30
    /// Bounds on what a flood of clients can make the supervisor hold.
    static let maxConnections = 1024
    static let maxUDPFlows = 1024
    static let connectTimeoutMs: Int32 = 10_000
    static let bufferSize = 65536

    private let lock = NSLock()
    private var started = false
    private var stopped = false
    private var connections = 0
    /// The stop pipe: written once by stop() and never drained, so every poll sees it.
    private var stopRead: Int32 = -1
    private var stopWrite: Int32 = -1
    private let threads = DispatchGroup()

    public init(hostPort: Int, proto: String, targetIP: IPv4Address, targetPort: Int, underlay: NetNamespace) {
        self.hostPort = hostPort
        self.proto = proto.uppercased()
        self.targetIP = targetIP
        self.targetPort = targetPort
        self.underlay = underlay
    }

    deinit {
        // Every thread holds a reference to self, so none is left running here.
        if stopRead >= 0 { close(stopRead) }
        if stopWrite >= 0 { close(stopWrite) }
    }

    /// "127.0.0.1:8080/TCP", how errors name the mapping.
    public var name: String { "127.0.0.1:\(hostPort)/\(proto)" }

    /// Binds 127.0.0.1:hostPort now (a taken port fails here) and starts serving.
    public func start() throws(RuntimeError) {
        guard proto == "TCP" || proto == "UDP" else { throw .spec("\(name): protocol must be TCP or UDP") }
        guard (1...65535).contains(hostPort) else { throw .spec("\(name): host port must be 1 to 65535") }
        guard (1...65535).contains(targetPort) else { throw .spec("\(name): container port \(targetPort) must be 1 to 65535") }
        lock.lock()
        defer { lock.unlock() }
        guard !started && !stopped else { throw .state("\(name): a forwarder starts once") }

        // The stop pipe: a socket pair, as it takes SOCK_CLOEXEC atomically.
        var p: [Int32] = [-1, -1]
        let pairType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        if socketpair(AF_UNIX, pairType, 0, &p) < 0 { throw .system("\(name): socketpair", errno: errno) }
        let tcp = proto == "TCP"
        let type = Int32(tcp ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue)
        let fd = socket(AF_INET, type | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if fd < 0 {
            let e = errno
            close(p[0]); close(p[1])
            throw .system("\(name): socket", errno: e)
        }
        var one: Int32 = 1
        // Not for UDP: there SO_REUSEADDR would let a second socket share the port.
        if tcp { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
        var addr = IPv4Address(127, 0, 0, 1).socketAddress(port: hostPort)
        var rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc == 0 && tcp { rc = listen(fd, 128) }
        if rc < 0 {
            let e = errno
            close(fd); close(p[0]); close(p[1])
            throw .system(name, errno: e)
        }
        stopRead = p[0]
        stopWrite = p[1]
        started = true
        if tcp {
            spawn { self.acceptLoop(fd) }
        } else {
            spawn { self.udpLoop(fd) }
        }
    }

    /// Closes the listener and every connection and flow; returns once their threads ended.
    /// Idempotent.
    public func stop() {
        lock.lock()
        let signal = started && !stopped
        stopped = true
        lock.unlock()
        guard signal else { return }
        var b: UInt8 = 1
        _ = write(stopWrite, &b, 1)
        // Once every thread ended nothing polls the stop pipe; else deinit closes it.
        guard threads.wait(timeout: .now() + 5) == .success else { return }
        lock.lock()
        close(stopRead); close(stopWrite)
        stopRead = -1; stopWrite = -1
        lock.unlock()
    }

    private func spawn(_ body: @escaping @Sendable () -> Void) {
        threads.enter()
        let t = Thread {
            body()
            self.threads.leave()
        }
        t.name = "minik-forward \(name)"
        t.start()
    }

    private func isStopping(_ p: pollfd) -> Bool { p.revents != 0 }

    // MARK: TCP

    private func acceptLoop(_ listener: Int32) {
        defer { close(listener) }
        var fds = [pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
        while true {
            fds[0].revents = 0
            fds[1].revents = 0
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                return
            }
            if isStopping(fds[0]) { return }
            while true {
                // accept4 does not import into Swift: the flags are set right after.
                // (minik's spawns close every inherited fd above 2 before execve anyway.)
                let client = accept(listener, nil, nil)
                if client < 0 {
                    // EAGAIN: all taken; ECONNABORTED and the like: a client gave up.
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    break
                }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
                lock.lock()
                let admit = connections < Self.maxConnections && !stopped
                if admit { connections += 1 }
                lock.unlock()
                guard admit else { close(client); continue }
                spawn {
                    self.serve(client)
                    self.lock.lock()
                    self.connections -= 1
                    self.lock.unlock()
                }
            }
        }
    }

    /// One accepted connection: connect to the target from the underlay, then relay.
    private func serve(_ client: Int32) {
        defer { close(client) }
        guard let upstream = connectUpstream() else { return }
        defer { close(upstream) }
        relay(client, upstream)
    }

    /// A connection to targetIP:targetPort from the underlay; nil on failure, timeout or stop.
    private func connectUpstream() -> Int32? {
        guard case .connected(let fd) = underlay.connectTCP(to: targetIP, port: targetPort, timeoutMs: Self.connectTimeoutMs,
                                                            abortFD: stopRead) else { return nil }
        return fd
    }

    /// One direction of a relayed connection: bytes read from `from` wait in buf until
    /// `to` takes them.
    private struct Direction {
        let from: Int32
        let to: Int32
        let buf: UnsafeMutableRawPointer
        var start = 0, end = 0
        /// `from` reached EOF.
        var eof = false
        /// Done: EOF seen, everything written, `to` shut down for writing.
        var done = false

        var pending: Bool { start < end }
        var wantsRead: Bool { !eof && !pending }

        /// Reads what is there; false on a fatal error.
        mutating func fill() -> Bool {
            let n = recv(from, buf, PortForwarder.bufferSize, 0)
            if n > 0 { start = 0; end = n; return true }
            if n == 0 { eof = true; return true }
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
        }

        /// Writes what it can; false on a fatal error.
        mutating func drain() -> Bool {
            let n = send(to, buf + start, end - start, Int32(MSG_NOSIGNAL))
            if n >= 0 { start += n; return true }
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
        }

        /// Half-closes `to` once everything from `from` went through.
        mutating func finishIfDrained() {
            if eof && !pending && !done {
                shutdown(to, Int32(SHUT_WR))
                done = true
            }
        }
    }

    /// Relays both ways until both directions are done, an error, or stop.
    private func relay(_ a: Int32, _ b: Int32) {
        let size = Self.bufferSize
        let bufA = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        let bufB = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { bufA.deallocate(); bufB.deallocate() }
        var ab = Direction(from: a, to: b, buf: bufA)
        var ba = Direction(from: b, to: a, buf: bufB)
        var fds = [pollfd](repeating: pollfd(), count: 3)
        fds[0] = pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0)

        while !(ab.done && ba.done) {
            // An fd with nothing to wait for is left out (-1), so a hang-up it reports
            // cannot spin the loop; a hang-up is seen through the next read or write.
            func events(_ fd: Int32, reading r: Direction, writing w: Direction) -> pollfd {
                var ev: Int16 = 0
                if r.wantsRead { ev |= Int16(POLLIN) }
                if w.pending { ev |= Int16(POLLOUT) }
                return pollfd(fd: ev == 0 ? -1 : fd, events: ev, revents: 0)
            }
            fds[0].revents = 0
            fds[1] = events(a, reading: ab, writing: ba)
            fds[2] = events(b, reading: ba, writing: ab)
            if poll(&fds, 3, -1) < 0 {
                if errno == EINTR { continue }
                return
            }
            if isStopping(fds[0]) { return }
            let ready = Int16(POLLIN | POLLOUT | POLLHUP | POLLERR)
            let aReady = fds[1].revents & ready != 0
            let bReady = fds[2].revents & ready != 0
            if aReady && ab.wantsRead && !ab.fill() { return }
            if bReady && ba.wantsRead && !ba.fill() { return }
            if bReady && ab.pending && !ab.drain() { return }
            if aReady && ba.pending && !ba.drain() { return }
            ab.finishIfDrained()
            ba.finishIfDrained()
        }
    }

    // MARK: UDP

    private struct FlowKey: Hashable {
        let ip: UInt32
        let port: UInt16
    }

    private struct Flow {
        let fd: Int32
        let client: sockaddr_in
        var lastActive: Date
    }

    /// Serves every UDP client: a datagram from a new client opens a connected socket in the
    /// underlay towards the target; what comes back on it goes to that client.
    private func udpLoop(_ listener: Int32) {
        var flows: [FlowKey: Flow] = [:]
        defer {
            for f in flows.values { close(f.fd) }
            close(listener)
        }
        let buf = UnsafeMutableRawPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
        defer { buf.deallocate() }

        while true {
            let now = Date()
            for (k, f) in flows where now.timeIntervalSince(f.lastActive) >= Self.udpFlowTimeout {
                close(f.fd)
                flows[k] = nil
            }
            let order = Array(flows.keys)
            var fds = [pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            for k in order { fds.append(pollfd(fd: flows[k]!.fd, events: Int16(POLLIN), revents: 0)) }
            var timeout: Int32 = -1
            if let oldest = flows.values.map(\.lastActive).min() {
                let left = Self.udpFlowTimeout - now.timeIntervalSince(oldest)
                timeout = Int32(max(0, min(left, Self.udpFlowTimeout)) * 1000) + 10
            }
            if poll(&fds, nfds_t(fds.count), timeout) < 0 {
                if errno == EINTR { continue }
                return
            }
            if isStopping(fds[0]) { return }

            // Replies: each goes back to its flow's client from the listening socket.
            for (i, k) in order.enumerated() where fds[i + 2].revents != 0 {
                guard var flow = flows[k] else { continue }
                for _ in 0..<64 {
                    let n = recv(flow.fd, buf, Self.bufferSize, 0)
                    if n < 0 {
                        // ECONNREFUSED: an ICMP error for an earlier datagram; UDP goes on.
                        if errno == EINTR || errno == ECONNREFUSED { continue }
                        break
                    }
                    flow.lastActive = Date()
                    var to = flow.client
                    _ = withUnsafePointer(to: &to) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(listener, buf, n, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                }
                flows[k] = flow
            }

            // Requests: each goes out on its client's flow, made on first sight.
            guard fds[1].revents != 0 else { continue }
            for _ in 0..<64 {
                var from = sockaddr_in()
                var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                let n = withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(listener, buf, Self.bufferSize, 0, $0, &len) }
                }
                if n < 0 {
                    if errno == EINTR { continue }
                    break
                }
                let key = FlowKey(ip: from.sin_addr.s_addr, port: from.sin_port)
                if flows[key] == nil {
                    if flows.count >= Self.maxUDPFlows, let idlest = flows.min(by: { $0.value.lastActive < $1.value.lastActive }) {
                        close(idlest.value.fd)
                        flows[idlest.key] = nil
                    }
                    guard let fd = openUDPFlow() else { continue }
                    flows[key] = Flow(fd: fd, client: from, lastActive: Date())
                }
                flows[key]!.lastActive = Date()
                _ = send(flows[key]!.fd, buf, n, 0)
            }
        }
    }

    /// A UDP socket of the underlay connected to the target; nil on failure.
    private func openUDPFlow() -> Int32? {
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        guard let fd = try? underlay.socket(domain: AF_INET, type: type, protocol: 0) else { return nil }
        var addr = targetIP.socketAddress(port: targetPort)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc < 0 { close(fd); return nil }
        return fd
    }
}
