// minik-dns: the cluster DNS server, run as the kube-system/minik-dns pods behind the
// kube-dns service. It serves the zone file the supervisor writes (and replaces on every
// change; inotify tells us at once), over UDP (one SO_REUSEPORT socket and thread per
// CPU, batched with recvmmsg/sendmmsg) and TCP (a thread per connection), and forwards
// names outside the cluster to the zone's upstreams, answering SERVFAIL when they do not
// answer in time, or REFUSED at once when there are none.
//
//   minik-dns [--zone FILE] [--listen ADDR] [--port N] [--threads N] [--timeout-ms N]
//   minik-dns --domain example.test --record www.example.test=192.0.2.10 ...
// The second form serves a fixed zone of A records given on the command line (a stand-in
// upstream resolver inside a cluster, for labs and tests), without a file.
import CDNSIO
import Glibc
import MinikDNS
import Synchronization

struct Options {
    var zone = "/etc/minik-dns/zone"
    var listen = IPv4Address(0)
    var port: UInt16 = 53
    var threads = max(1, min(Int(dnsio_cpus()), 4))
    var timeoutMillis = 2000
    /// --domain/--record: a fixed zone instead of the file.
    var domain: String?
    var records: [(String, String)] = []
}

func log(_ s: String) {
    let line = "minik-dns: \(s)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

func fail(_ s: String) -> Never {
    log(s)
    exit(1)
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    func value(_ flag: String) -> String {
        guard let v = args.popFirst() else { fail("\(flag) needs a value") }
        return v
    }
    while let a = args.popFirst() {
        switch a {
        case "--zone": o.zone = value(a)
        case "--listen":
            guard let ip = IPv4Address(value(a)) else { fail("--listen: not an IPv4 address") }
            o.listen = ip
        case "--port":
            guard let p = UInt16(value(a)), p > 0 else { fail("--port: not a port") }
            o.port = p
        case "--threads":
            guard let t = Int(value(a)), (1...64).contains(t) else { fail("--threads: 1 to 64") }
            o.threads = t
        case "--timeout-ms":
            guard let t = Int(value(a)), t > 0 else { fail("--timeout-ms: a positive number") }
            o.timeoutMillis = t
        case "--domain": o.domain = value(a)
        case "--record":
            let v = value(a)
            guard let eq = v.firstIndex(of: "=") else { fail("--record NAME=IPV4") }
            o.records.append((String(v[..<eq]), String(v[v.index(after: eq)...])))
        case "-h", "--help":
            print("usage: minik-dns [--zone FILE] [--listen ADDR] [--port N] [--threads N] [--timeout-ms N]")
            print("       minik-dns --domain NAME [--record NAME=IPV4]... [--listen ADDR] [--port N]")
            exit(0)
        default: fail("unknown argument \(a)")
        }
    }
    return o
}

func monotonicMillis() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Starts a detached thread; false if the system has none to give.
@discardableResult
func spawnThread(_ body: @escaping () -> Void) -> Bool {
    var t = pthread_t()
    let box = Unmanaged.passRetained(ThreadBody(body))
    let rc = pthread_create(&t, nil, { p in
        let b = Unmanaged<ThreadBody>.fromOpaque(p!).takeRetainedValue()
        b.run()
        return nil
    }, box.toOpaque())
    if rc != 0 {
        box.release()
        log("pthread_create: \(String(cString: strerror(rc)))")
        return false
    }
    pthread_detach(t)
    return true
}

// MARK: - the zone

let options = parseOptions()
let current = Mutex<Responder?>(nil)
let loadedText = Mutex<String?>(nil)

func readFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

func fixedZone(_ domain: String) {
    var text = "\(ZoneFile.header)\ndomain \(domain)\n"
    for (name, ip) in options.records { text += "A \(name) \(ip)\n" }
    do {
        let file = try ZoneFile.parse(text)
        let responder = Responder(zone: file.zone)
        current.withLock { $0 = responder }
        log("serving the fixed zone \(file.domain): \(file.records.count) records")
    } catch {
        fail("--domain/--record: \(error.message)")
    }
}

func loadZone() {
    if let domain = options.domain { return fixedZone(domain) }
    let started = monotonicMillis()
    guard let text = readFile(options.zone) else {
        log("cannot read \(options.zone): \(String(cString: strerror(errno))); waiting for it")
        return
    }
    // One replacement of the file can raise more than one event: the same text is not
    // loaded again.
    if loadedText.withLock({ $0 == text }) { return }
    do {
        let file = try ZoneFile.parse(text)
        let parsed = monotonicMillis()
        let zone = file.zone
        let indexed = monotonicMillis()
        let responder = Responder(zone: zone)
        log("zone: parsed in \(parsed - started) ms, indexed in \(indexed - parsed) ms, answers encoded in \(monotonicMillis() - indexed) ms")
        let previous = current.withLock { old -> Responder? in
            let p = old
            old = responder
            return p
        }
        loadedText.withLock { $0 = text }
        let verb = previous == nil ? "loaded" : "reloaded"
        log("zone \(file.domain) \(verb): serial \(file.serial), \(file.records.count) records, \(file.upstreams.count) upstreams, in \(monotonicMillis() - started) ms")
    } catch {
        log("\(options.zone): \(error.message); keeping the previous zone")
    }
}

func watchZone() {
    var dir = options.zone
    var file = options.zone
    if let slash = options.zone.lastIndex(of: "/") {
        dir = String(options.zone[..<slash])
        file = String(options.zone[options.zone.index(after: slash)...])
        if dir.isEmpty { dir = "/" }
    } else {
        dir = "."
    }
    let fd = dnsio_watch_dir(dir)
    if fd < 0 {
        log("cannot watch \(dir): \(String(cString: strerror(-fd))); the zone will not follow changes")
        return
    }
    let watching = spawnThread {
        while true {
            let rc = dnsio_watch_read(fd, file)
            if rc < 0 && rc != -EINTR {
                log("watching \(dir): \(String(cString: strerror(-rc)))")
                return
            }
            if rc == 1 { loadZone() }
        }
    }
    if !watching { fail("cannot start the zone watcher") }
}

// MARK: - forwarding

/// Queries in flight to an upstream, by the ID we gave them. IDs are random, and a reply
/// is taken only from the upstream asked and only for the question asked (RFC 5452).
/// An upstream that does not answer within the timeout is replaced by the next one, once
/// per upstream; then the client gets SERVFAIL.
final class Forwarder: @unchecked Sendable {
    struct Pending {
        var originalID: UInt16
        var client: sockaddr_in
        var replyFD: Int32
        /// The client's query.
        var query: [UInt8]
        /// What went upstream (our ID in it), and to which.
        var sent: [UInt8]
        var upstreams: [Upstream]
        var tries: Int
        var upstream: Int
        var deadline: Int
        /// An ExternalName's target being looked up: the answer is built from it.
        var chase: Chase?
    }

    let fd: Int32
    let lock = Mutex<(pending: [UInt16: Pending], rotate: Int)>(([:], 0))
    static let maxPending = 4096

    init() {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if s < 0 { fail("upstream socket: \(String(cString: strerror(errno)))") }
        fd = s
        _ = dnsio_rcvtimeo(fd, 50)
        if !spawnThread({ [self] in receive() }) { fail("cannot start the forwarder's thread") }
    }

    static func address(_ u: Upstream) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = u.port.bigEndian
        sa.sin_addr.s_addr = u.ip.value.bigEndian
        return sa
    }

    /// Sends a client's query on to an upstream under a fresh random ID.
    func forward(_ query: [UInt8], upstreams: [Upstream], client: sockaddr_in, replyFD: Int32, chase: Chase? = nil) {
        guard !upstreams.isEmpty, query.count >= 12 else { return }
        let original = UInt16(query[0]) << 8 | UInt16(query[1])
        var rng = SystemRandomNumberGenerator()
        let p = lock.withLock { s -> Pending? in
            if s.pending.count >= Forwarder.maxPending { return nil }
            var id = UInt16.random(in: 0...UInt16.max, using: &rng)
            while s.pending[id] != nil { id = UInt16.random(in: 0...UInt16.max, using: &rng) }
            s.rotate += 1
            var sent = chase?.upstreamQuery(id: id) ?? query
            sent[0] = UInt8(id >> 8)
            sent[1] = UInt8(id & 0xff)
            let p = Pending(originalID: original, client: client, replyFD: replyFD, query: query, sent: sent, upstreams: upstreams,
                            tries: 1, upstream: s.rotate % upstreams.count, deadline: monotonicMillis() + options.timeoutMillis, chase: chase)
            s.pending[id] = p
            return p
        }
        guard let p else {
            reply(servfail(query), to: client, fd: replyFD)
            return
        }
        send(p)
    }

    private func send(_ p: Pending) {
        var to = Forwarder.address(p.upstreams[p.upstream])
        _ = p.sent.withUnsafeBytes { b in
            withUnsafePointer(to: &to) { ptr in
                ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
    }

    func reply(_ bytes: [UInt8], to client: sockaddr_in, fd replyFD: Int32) {
        guard !bytes.isEmpty else { return }
        var to = client
        _ = bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &to) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(replyFD, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
    }

    /// The question section of a message, ASCII letters in lower case (to compare), or nil.
    static func question(_ m: ArraySlice<UInt8>) -> [UInt8]? {
        questionEnd(m).map { end in m[(m.startIndex + 12)..<end].map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 } }
    }

    private func receive() {
        var buf = [UInt8](repeating: 0, count: 65536)
        var lastSweep = monotonicMillis()
        while true {
            var from = sockaddr_in()
            var fromLength = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = buf.withUnsafeMutableBytes { b in
                withUnsafeMutablePointer(to: &from) { f in
                    f.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, 0, $0, &fromLength) }
                }
            }
            if n >= 12 && buf[2] & 0x80 != 0 {
                let id = UInt16(buf[0]) << 8 | UInt16(buf[1])
                let reply = buf[0..<n]
                let question = Forwarder.question(reply)
                let p = lock.withLock { s -> Pending? in
                    guard let p = s.pending[id] else { return nil }
                    let asked = Forwarder.address(p.upstreams[p.upstream])
                    guard from.sin_addr.s_addr == asked.sin_addr.s_addr, from.sin_port == asked.sin_port,
                          question != nil, question == Forwarder.question(p.sent[...]) else { return nil }
                    return s.pending.removeValue(forKey: id)
                }
                if let p {
                    if let chase = p.chase {
                        let limit = chase.query.edns.map { min(max(Int($0.udpPayloadSize), 512), Responder.maxUDPSize) } ?? 512
                        self.reply(chase.answer(upstreamReply: Array(reply), limit: limit), to: p.client, fd: p.replyFD)
                    } else {
                        var out = Array(reply)
                        out[0] = UInt8(p.originalID >> 8)
                        out[1] = UInt8(p.originalID & 0xff)
                        self.reply(out, to: p.client, fd: p.replyFD)
                    }
                }
            }
            // Every 50 ms: the next upstream for queries that timed out, SERVFAIL when every
            // upstream was tried, so a client never waits on a silent upstream.
            let now = monotonicMillis()
            if now - lastSweep < 50 { continue }
            lastSweep = now
            let (retry, failed) = lock.withLock { s -> ([Pending], [Pending]) in
                var retry: [Pending] = [], failed: [Pending] = []
                for (id, p) in s.pending where p.deadline <= now {
                    if p.tries < p.upstreams.count {
                        var next = p
                        next.tries += 1
                        next.upstream = (p.upstream + 1) % p.upstreams.count
                        next.deadline = now + options.timeoutMillis
                        s.pending[id] = next
                        retry.append(next)
                    } else {
                        s.pending.removeValue(forKey: id)
                        failed.append(p)
                    }
                }
                return (retry, failed)
            }
            for p in retry { send(p) }
            for p in failed { reply(servfail(p.query), to: p.client, fd: p.replyFD) }
        }
    }
}

/// SERVFAIL for a query: its header and question.
func servfail(_ query: [UInt8]) -> [UInt8] {
    // Never answer a response (two servers would bounce packets), nor other opcodes.
    guard query.count >= 12, query[2] & 0x80 == 0, (query[2] >> 3) & 0xf == 0 else { return [] }
    let end = questionEnd(query[...])
    var out = Array(query[0..<(end ?? 12)])
    out[2] = 0x80 | (query[2] & 0x79)
    out[3] = 0x80 | 2
    out[4] = 0; out[5] = end == nil ? 0 : 1
    for i in 6..<12 { out[i] = 0 }
    return out
}

/// Where the (single, uncompressed) question of a message ends, or nil.
func questionEnd(_ m: ArraySlice<UInt8>) -> Int? {
    var p = m.startIndex + 12
    while p < m.endIndex {
        let len = Int(m[p])
        if len == 0 { return p + 5 <= m.endIndex ? p + 5 : nil }
        guard len <= 63 else { return nil }
        p += 1 + len
    }
    return nil
}

/// A TCP exchange with an upstream, for a client that asked over TCP.
func forwardTCP(_ query: [UInt8], upstreams: [Upstream]) -> [UInt8] {
    for u in upstreams {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if s < 0 { continue }
        defer { close(s) }
        _ = dnsio_rcvtimeo(s, Int32(options.timeoutMillis))
        var tv = timeval(tv_sec: options.timeoutMillis / 1000, tv_usec: (options.timeoutMillis % 1000) * 1000)
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var to = Forwarder.address(u)
        let c = withUnsafePointer(to: &to) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if c < 0 { continue }
        let framed = [UInt8(query.count >> 8), UInt8(query.count & 0xff)] + query
        guard writeAll(s, framed), let answer = readFrame(s) else { continue }
        return answer
    }
    return servfail(query)
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        off += n
    }
    return true
}

func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
    var out = [UInt8](repeating: 0, count: count)
    var off = 0
    while off < count {
        let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + off, count - off) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return nil }
        off += n
    }
    return out
}

func readFrame(_ fd: Int32) -> [UInt8]? {
    guard let len = readExactly(fd, 2) else { return nil }
    let n = Int(len[0]) << 8 | Int(len[1])
    return n == 0 ? [] : readExactly(fd, n)
}

// MARK: - serving

let forwarder = Forwarder()

func serveUDP(_ fd: Int32) {
    let batch = 32, size = 4096
    var bufs = [UInt8](repeating: 0, count: batch * size)
    var addrs = [sockaddr_in](repeating: sockaddr_in(), count: batch)
    var lens = [Int32](repeating: 0, count: batch)
    // Responses, one slot of `size` bytes each (UDP answers are at most 1232 bytes).
    var replies = [UInt8](repeating: 0, count: batch * size)
    var replyAddrs = [sockaddr_in](repeating: sockaddr_in(), count: batch)
    var replyLens = [Int32](repeating: 0, count: batch)
    var out: [UInt8] = []
    out.reserveCapacity(size)
    var key: [UInt8] = []
    key.reserveCapacity(256)
    while true {
        let n = Int(bufs.withUnsafeMutableBufferPointer { b in
            dnsio_recv(fd, b.baseAddress, Int32(size), Int32(batch), &addrs, &lens)
        })
        if n < 0 {
            if n == -Int(EAGAIN) { continue }
            log("udp receive: \(String(cString: strerror(Int32(-n))))")
            usleep(10_000)
            continue
        }
        let responder = current.withLock { $0 }
        var count = 0
        for i in 0..<n where lens[i] > 0 {
            let query = i * size..<(i * size + Int(lens[i]))
            let outcome: Outcome
            if let responder {
                outcome = bufs.withUnsafeBytes { all in
                    responder.respond(to: UnsafeRawBufferPointer(rebasing: all[query]), transport: .udp, out: &out, key: &key)
                }
            } else {
                out = servfail(Array(bufs[query])) // no zone yet: fail at once rather than say nothing
                outcome = out.isEmpty ? .drop : .reply
            }
            switch outcome {
            case .reply where out.count <= size:
                replies.withUnsafeMutableBufferPointer { r in
                    out.withUnsafeBufferPointer { o in
                        (r.baseAddress! + count * size).update(from: o.baseAddress!, count: o.count)
                    }
                }
                replyAddrs[count] = addrs[i]
                replyLens[count] = Int32(out.count)
                count += 1
            case .forward:
                forwarder.forward(Array(bufs[query]), upstreams: responder?.zone.upstreams ?? [], client: addrs[i], replyFD: fd)
            case .chase(let chase):
                forwarder.forward(Array(bufs[query]), upstreams: responder?.zone.upstreams ?? [], client: addrs[i], replyFD: fd, chase: chase)
            default:
                continue
            }
        }
        if count > 0 {
            _ = replies.withUnsafeMutableBufferPointer { r in
                dnsio_send(fd, r.baseAddress, Int32(size), replyLens, replyAddrs, Int32(count))
            }
        }
    }
}

func serveTCPConnection(_ c: Int32) {
    defer { close(c) }
    // A client that neither sends nor reads for 10 s loses its connection (and thread).
    _ = dnsio_rcvtimeo(c, 10_000)
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var out: [UInt8] = []
    var key: [UInt8] = []
    while let query = readFrame(c) {
        guard let responder = current.withLock({ $0 }) else { return }
        let outcome = query.withUnsafeBytes { responder.respond(to: $0, transport: .tcp, out: &out, key: &key) }
        switch outcome {
        case .reply: break
        case .forward: out = forwardTCP(query, upstreams: responder.zone.upstreams)
        case .chase(let chase):
            let reply = forwardTCP(chase.upstreamQuery(id: 1), upstreams: responder.zone.upstreams)
            out = chase.answer(upstreamReply: reply, limit: 65535)
        case .drop: return
        }
        if out.isEmpty || !writeAll(c, [UInt8(out.count >> 8), UInt8(out.count & 0xff)] + out) { return }
    }
}

let activeTCP = Atomic<Int>(0)

func serveTCP(_ listener: Int32) {
    while true {
        let c = dnsio_accept(listener)
        if c < 0 {
            if c != -EINTR { usleep(10_000) } // EMFILE and the like: let connections finish
            continue
        }
        if activeTCP.load(ordering: .relaxed) >= 256 {
            close(c)
            continue
        }
        activeTCP.add(1, ordering: .relaxed)
        let started = spawnThread {
            serveTCPConnection(c)
            activeTCP.subtract(1, ordering: .relaxed)
        }
        if !started {
            activeTCP.subtract(1, ordering: .relaxed)
            close(c)
        }
    }
}

signal(SIGPIPE, SIG_IGN)
// Watch first, then load: a replacement in between is not missed.
if options.domain == nil { watchZone() }
loadZone()
let addr = options.listen.value.bigEndian
var udp: [Int32] = []
for _ in 0..<options.threads {
    let fd = dnsio_listen(Int32(SOCK_DGRAM.rawValue), addr, options.port, 0)
    if fd < 0 { fail("udp \(options.listen):\(options.port): \(String(cString: strerror(-fd)))") }
    udp.append(fd)
}
let tcp = dnsio_listen(Int32(SOCK_STREAM.rawValue), addr, options.port, 512)
if tcp < 0 { fail("tcp \(options.listen):\(options.port): \(String(cString: strerror(-tcp)))") }
log("serving \(options.domain ?? options.zone) on \(options.listen):\(options.port) (udp with \(options.threads) threads, tcp)")
for fd in udp.dropFirst() where !spawnThread({ serveUDP(fd) }) { fail("cannot start the UDP threads") }
if !spawnThread({ serveTCP(tcp) }) { fail("cannot start the TCP thread") }
serveUDP(udp[0])
