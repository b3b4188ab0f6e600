// `minik capture`: packets from several interfaces in several namespaces, into one
// pcapng stream. No tool runs inside the nodes or pods: a packet socket is opened inside
// each namespace (on a throwaway thread; the socket stays there) and bound to its
// interface with the user's filter compiled by libpcap and run by the kernel. One thread
// per interface reads its socket; the blocks are written in the order they arrive, each
// with its interface and the kernel's timestamp, so Wireshark shows one packet crossing
// the pod's eth0, cni0, flannel.1 and eth0 as consecutive frames.
//
// Packets wait 50 ms in a reorder window and leave in the order of their timestamps (the
// threads read their sockets in batches), so the crossing reads top to bottom. The
// output is flushed every 100 ms (a pipe into `wireshark -k -i -` shows packets as they
// come) or when 256 KiB wait. The end: `count` packets, `stop()`, or a
// write that fails (the reader went away).
import CCapture
import Foundation

public final class Capture: @unchecked Sendable {
    public struct Interface: Sendable {
        /// The namespace (under /run/netns) and the interface in it.
        public var netns: String
        public var interface: String
        /// How it is named in the file: "lab-worker:eth0", "default/web-0:eth0".
        public var label: String
        public var description: String

        public init(netns: String, interface: String, label: String, description: String) {
            self.netns = netns
            self.interface = interface
            self.label = label
            self.description = description
        }
    }

    public struct Stats: Sendable {
        public var captured: Int
        public var droppedByKernel: Int
    }

    public static let vxlanComment = "VXLAN (flannel) is on UDP port 8472: decode it with tshark -d udp.port==8472,vxlan (Wireshark: Decode As, UDP port 8472, VXLAN)"

    let interfaces: [Interface]
    let filter: String?
    let snaplen: Int
    let limit: Int?
    let output: Int32
    private let lock = NSLock()
    private var buffer: [UInt8] = []
    /// Packets in the reorder window: timestamp and block.
    private var window: [(UInt64, [UInt8])] = []
    private var windowBytes = 0
    static let reorderNs: UInt64 = 50_000_000
    private var lastFlush = 0.0
    private var captured = 0
    private var drops = 0
    private var stopped = false
    private var writeError: Int32 = 0
    private var sockets: [Int32] = []

    /// Checks a filter expression as libpcap compiles it; the error is libpcap's message.
    public static func checkFilter(_ filter: String, snaplen: Int = 262_144) -> String? {
        var err = [CChar](repeating: 0, count: 512)
        return minik_capture_check_filter(filter, Int32(snaplen), &err, err.count) == 0 ? nil : String(cString: err)
    }

    public init(interfaces: [Interface], filter: String?, snaplen: Int = 262_144, count: Int? = nil, output: Int32) {
        self.interfaces = interfaces
        self.filter = filter
        self.snaplen = snaplen
        self.limit = count
        self.output = output
    }

    /// Opens every socket (so a bad interface fails before anything is written), writes
    /// the headers, calls `ready` (every socket is capturing from then on), then captures
    /// until the end; returns what was captured.
    public func run(ready: () -> Void = {}) throws(RuntimeError) -> Stats {
        defer { for fd in sockets { close(fd) } }
        for i in interfaces {
            let ns = try NetNamespace.open(i.netns)
            let index = if_nametoindexIn(ns, i.interface)
            guard let index else { throw .state("\(i.label): no interface \(i.interface) in \(i.netns)") }
            let fd = try ns.socket(domain: AF_PACKET, type: Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                                   protocol: Int32(UInt16(0x0003 /* ETH_P_ALL */).bigEndian))
            sockets.append(fd)
            var err = [CChar](repeating: 0, count: 512)
            let rc = minik_capture_setup(fd, index, filter, Int32(snaplen), Int32(8 << 20), &err, err.count)
            if rc == -EINVAL && err[0] != 0 { throw .state("capture filter \"\(filter ?? "")\": \(String(cString: err))") }
            if rc < 0 { throw .system("capture on \(i.label)", errno: -rc) }
        }
        var header = PcapNG.sectionHeader(comment: Self.vxlanComment, application: "minik capture")
        for i in interfaces {
            header += PcapNG.interfaceDescription(name: i.label, description: i.description, snaplen: UInt32(snaplen))
        }
        lock.lock()
        buffer = header
        flushLocked(force: true)
        lock.unlock()
        ready()

        let group = DispatchGroup()
        for (n, fd) in sockets.enumerated() {
            group.enter()
            let t = Thread { [self] in
                self.read(fd: fd, interface: UInt32(n))
                group.leave()
            }
            t.stackSize = 1 << 20
            t.start()
        }
        group.wait()
        lock.lock()
        flushLocked(force: true)
        let stats = Stats(captured: captured, droppedByKernel: drops)
        let failed = writeError
        lock.unlock()
        if failed != 0 && failed != EPIPE { throw .system("write the capture", errno: failed) }
        return stats
    }

    /// Ends the capture (from a signal handler's thread or another one).
    public func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
    }

    private func read(fd: Int32, interface: UInt32) {
        let packet = UnsafeMutableRawBufferPointer.allocate(byteCount: snaplen, alignment: 8)
        defer { packet.deallocate() }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            lock.lock()
            let done = stopped
            if !done { flushLocked(force: false) }
            lock.unlock()
            if done { break }
            pfd.revents = 0
            if poll(&pfd, 1, 100) <= 0 { continue }
            // Read what is waiting, a batch at a time under one lock.
            lock.lock()
            var reads = 0
            while !stopped && reads < 256 {
                var ts: UInt64 = 0, wire: UInt32 = 0, outgoing: Int32 = 0
                let n = minik_capture_recv(fd, packet.baseAddress, packet.count, &ts, &wire, &outgoing)
                if n <= 0 { break }
                reads += 1
                var block: [UInt8] = []
                block.reserveCapacity(n + 48)
                PcapNG.appendEnhancedPacket(to: &block, interface: interface, timestampNs: ts,
                                            data: UnsafeRawBufferPointer(rebasing: packet[0..<n]), wireLength: wire, outgoing: outgoing != 0)
                window.append((ts, block))
                windowBytes += block.count
                captured += 1
                if let limit, captured >= limit { stopped = true }
                if windowBytes >= 256 << 10 { flushLocked(force: true) }
            }
            drops += Int(minik_capture_drops(fd))
            lock.unlock()
        }
        lock.lock()
        drops += Int(minik_capture_drops(fd))
        lock.unlock()
    }

    /// Moves the packets older than the reorder window (all of them when forced, as at
    /// the end) into the buffer in timestamp order, and writes the buffer out when
    /// forced or when 100 ms passed.
    private func flushLocked(force: Bool) {
        let now = PingAll.now()
        guard force || now - lastFlush >= 0.1 else { return }
        lastFlush = now
        if !window.isEmpty {
            window.sort { $0.0 < $1.0 }
            var wall = timespec()
            clock_gettime(CLOCK_REALTIME, &wall)
            let horizon = UInt64(wall.tv_sec) * 1_000_000_000 + UInt64(wall.tv_nsec) - Self.reorderNs
            let ready = force || stopped ? window.count : (window.firstIndex { $0.0 > horizon } ?? window.count)
            for (_, block) in window[0..<ready] { buffer += block; windowBytes -= block.count }
            window.removeFirst(ready)
        }
        guard !buffer.isEmpty else { return }
        var off = 0
        while off < buffer.count && writeError == 0 {
            let n = buffer.withUnsafeBytes { write(output, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                writeError = errno
                stopped = true
            } else {
                off += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// The index of `name` inside the namespace (nil when it has no such interface).
func if_nametoindexIn(_ ns: NetNamespace, _ name: String) -> Int32? {
    guard let sock = try? ns.netlink, let link = try? sock.linkGet(name: name) else { return nil }
    return link.index
}
