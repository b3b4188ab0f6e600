// Traffic control: the token bucket filter (tbf) as the root qdisc of a link, the one
// shaper this kernel has for a rate limit (it has no netem). Named after `tc`.
//
// The kernel takes a tbf with a link-layer-aware rate (so no rate table is needed), the
// burst in bytes (TCA_TBF_BURST) and a byte limit for its inner bfifo. Deleting the root
// qdisc gives the link back its default (noqueue on a veth).
import CMinik
#if canImport(Glibc)
import Glibc
#endif

/// A token bucket filter's settings, as `tc qdisc ... tbf rate R burst B limit L` takes them.
public struct TBFSettings: Sendable, Equatable {
    /// Bytes per second.
    public var rate: UInt64
    /// The bucket's size in bytes: what may pass at once after a pause.
    public var burst: UInt32
    /// Bytes that may wait in the queue; more are dropped.
    public var limit: UInt32

    public init(rate: UInt64, burst: UInt32, limit: UInt32) {
        self.rate = rate
        self.burst = burst
        self.limit = limit
    }
}

/// A link's root qdisc as `tc -s qdisc show dev D` reports it.
public struct QdiscInfo: Sendable {
    public var index: Int32
    public var kind: String
    public var handle: UInt32
    /// For a tbf: its rate in bytes per second.
    public var rate: UInt64?
    public var bytes: UInt64 = 0
    public var packets: UInt32 = 0
    public var drops: UInt32 = 0
    public var overlimits: UInt32 = 0
}

extension NetlinkSocket {
    private static let rootParent: UInt32 = 0xFFFF_FFFF  // TC_H_ROOT

    /// `tc qdisc replace dev INDEX root tbf rate R burst B limit L`: creates the root tbf
    /// or overwrites whatever root qdisc the link has.
    public func qdiscReplaceTBF(index: Int32, _ tbf: TBFSettings) throws(NetlinkError) {
        let m = NetlinkMessage(type: RTM_NEWQDISC, flags: NetlinkSocket.createReplace)
        var tc = tcmsg()
        tc.tcm_family = UInt8(AF_UNSPEC)
        tc.tcm_ifindex = index
        tc.tcm_parent = Self.rootParent
        m.header(tc)
        m.put(Int(TCA_KIND), string: "tbf")
        var q = tc_tbf_qopt()
        q.rate.rate = UInt32(min(tbf.rate, UInt64(UInt32.max)))
        q.rate.linklayer = UInt8(TC_LINKLAYER_ETHERNET.rawValue)
        q.limit = tbf.limit
        // With TCA_TBF_BURST the kernel derives the bucket time itself.
        let parms = withUnsafeBytes(of: q) { Array($0) }
        m.nest(Int(TCA_OPTIONS)) {
            m.put(Int(TCA_TBF_PARMS), bytes: parms)
            if tbf.rate > UInt64(UInt32.max) { m.put(Int(TCA_TBF_RATE64), u64: tbf.rate) }
            m.put(Int(TCA_TBF_BURST), u32: tbf.burst)
        }
        try request(m, "tc qdisc replace dev \(index) root tbf rate \(tbf.rate * 8)bit burst \(tbf.burst) limit \(tbf.limit)")
    }

    /// `tc qdisc del dev INDEX root`: the link's default qdisc comes back. Fails with
    /// ENOENT (isNotFound) when the root qdisc is the default one already.
    public func qdiscDelRoot(index: Int32) throws(NetlinkError) {
        let m = NetlinkMessage(type: RTM_DELQDISC, flags: 0)
        var tc = tcmsg()
        tc.tcm_family = UInt8(AF_UNSPEC)
        tc.tcm_ifindex = index
        tc.tcm_parent = Self.rootParent
        m.header(tc)
        try request(m, "tc qdisc del dev \(index) root")
    }

    /// `tc -s qdisc show [dev INDEX]`: root qdiscs with their counters.
    public func qdiscList(index: Int32? = nil) throws(NetlinkError) -> [QdiscInfo] {
        let m = NetlinkMessage(type: RTM_GETQDISC, flags: Int32(NLM_F_DUMP))
        var tc = tcmsg()
        tc.tcm_family = UInt8(AF_UNSPEC)
        m.header(tc)
        return try query(m, "tc qdisc show").compactMap { r -> QdiscInfo? in
            guard let t = r.headerAs(tcmsg.self), t.tcm_parent == Self.rootParent,
                  index == nil || t.tcm_ifindex == index!,
                  let kind = r.string(Int(TCA_KIND)) else { return nil }
            var info = QdiscInfo(index: t.tcm_ifindex, kind: kind, handle: t.tcm_handle)
            if kind == "tbf", let options = r.attributes[UInt16(TCA_OPTIONS)] {
                let o = NetlinkReply.nested(options)
                if let p = o[UInt16(TCA_TBF_PARMS)], p.count >= MemoryLayout<tc_tbf_qopt>.size {
                    info.rate = UInt64(p.withUnsafeBytes { $0.loadUnaligned(as: tc_tbf_qopt.self) }.rate.rate)
                }
                if let r64 = o[UInt16(TCA_TBF_RATE64)], r64.count >= 8 {
                    info.rate = r64.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                }
            }
            if let stats = r.attributes[UInt16(TCA_STATS2)] {
                let s = NetlinkReply.nested(stats)
                if let b = s[UInt16(TCA_STATS_BASIC)], b.count >= 12 {
                    info.bytes = b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                    info.packets = b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self) }
                }
                if let q = s[UInt16(TCA_STATS_QUEUE)], q.count >= MemoryLayout<gnet_stats_queue>.size {
                    let g = q.withUnsafeBytes { $0.loadUnaligned(as: gnet_stats_queue.self) }
                    info.drops = g.drops
                    info.overlimits = g.overlimits
                }
            }
            return info
        }
    }
}
