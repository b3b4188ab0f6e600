// What `trace` reads, gathered from a cluster: its places (pods, nodes, the underlay and
// the external host, from the cluster's state) and, lazily and once per namespace, the
// kernel's view (libnl) and the netfilter tables (iptables-save -c).
import Foundation
import MinikNetlink
import MinikSpec

extension Trace {
    public final class Reader: @unchecked Sendable {
        private let lock = NSLock()
        private var views: [String: KernelView?] = [:]
        private var tables: [String: [String: Netfilter.Table]] = [:]
        private var sysctls: [String: String?] = [:]
        private let save = Command.which("iptables-save")
        private var problems: [String] = []
        public var errors: [String] { lock.lock(); defer { lock.unlock() }; return problems }

        public init() {}

        /// Reads the namespaces a trace will surely cross (its ends and their nodes)
        /// at once, in parallel: their iptables-save runs are most of a trace's time.
        public func prefetch(_ places: [Place]) {
            let list = Array(Set(places.map(\.netns)))
            DispatchQueue.concurrentPerform(iterations: list.count) { i in
                _ = kernel(list[i])
                if places.contains(where: { $0.netns == list[i] && ($0.kind == .node || $0.kind == .external) }) { _ = netfilter(list[i]) }
            }
        }

        public func kernel(_ netns: String) -> KernelView? {
            lock.lock()
            if let v = views[netns] { lock.unlock(); return v }
            lock.unlock()
            var v: KernelView?
            do {
                let ns = try NetNamespace.open(netns)
                v = try KernelView.read(namespaceFD: ns.fd)
            } catch {
                lock.lock(); problems.append("\(netns): \(error)"); lock.unlock()
            }
            lock.lock(); views[netns] = v; lock.unlock()
            return v
        }

        /// A sysctl of the namespace (read by a process inside it: /proc/sys/net is per
        /// network namespace), once per trace.
        public func sysctl(_ netns: String, _ key: String) -> String? {
            lock.lock()
            if let v = sysctls[netns + " " + key] { lock.unlock(); return v }
            lock.unlock()
            var value: String?
            if let ns = try? NetNamespace.open(netns),
               let r = try? Command.run(["/bin/cat", "/proc/sys/\(key)"], joining: [ns.fd], timeout: 10), r.succeeded {
                value = r.output.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            lock.lock(); sysctls[netns + " " + key] = value; lock.unlock()
            return value
        }

        public func netfilter(_ netns: String) -> [String: Netfilter.Table] {
            lock.lock()
            if let t = tables[netns] { lock.unlock(); return t }
            lock.unlock()
            var t: [String: Netfilter.Table] = [:]
            if let save, let ns = try? NetNamespace.open(netns),
               let r = try? Command.run([save, "-c"], joining: [ns.fd], timeout: 30, outputLimit: 256 << 20), r.succeeded {
                t = Netfilter.parse(save: r.output)
            }
            lock.lock(); tables[netns] = t; lock.unlock()
            return t
        }
    }

    /// The places of a cluster as its state has them.
    public static func places(_ state: ClusterState) -> [Place] {
        var out: [Place] = []
        for n in state.nodes {
            out.append(Place(kind: .node, name: n.name, netns: n.netns, hostVeth: Naming.underlayPort(state.name, nodeIndex: n.index), ip: n.internalIP))
        }
        for p in state.pods where p.ip != nil && p.deletionTimestamp == nil {
            out.append(Place(kind: .pod, name: p.key, netns: p.netns, node: p.node, hostVeth: p.hostVeth, ip: p.ip))
        }
        out.append(Place(kind: .underlay, name: Naming.underlayBridge(state.name), netns: Naming.underlayNetns(state.name)))
        out.append(Place(kind: .external, name: "host", netns: Naming.externalNetns(state.name), hostVeth: Naming.externalPort(state.name),
                         ip: Naming.externalHostIP(state.spec.network.underlaySubnet)))
        return out
    }

    public static func world(_ state: ClusterState, reader: Reader) -> World {
        var w = World(places: places(state), kernel: { reader.kernel($0) }, netfilter: { reader.netfilter($0) },
                      underlayBridge: Naming.underlayBridge(state.name), vxlanPort: Int(Naming.vxlanPort))
        w.sysctl = { reader.sysctl($0, $1) }
        return w
    }
}
