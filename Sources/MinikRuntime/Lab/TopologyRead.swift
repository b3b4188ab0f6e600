// The topology of a running cluster: its state, and each node's and the underlay's
// kernel view, read now (for `minik graph` and the dashboard).
import Foundation
import MinikNetlink
import MinikSpec

extension Topology {
    public static func read(_ state: ClusterState) throws(RuntimeError) -> Topology {
        func view(_ netns: String) throws(RuntimeError) -> KernelView {
            let ns = try NetNamespace.open(netns)
            do { return try KernelView.read(namespaceFD: ns.fd) } catch { throw .netlink(error, context: "read the network state of \(netns)") }
        }
        var nodes: [NodeInput] = []
        for n in state.nodes {
            nodes.append(NodeInput(name: n.name, index: n.index, internalIP: n.internalIP, podCIDR: n.podCIDR, kernel: try view(n.netns)))
        }
        let pods = state.pods.map { p in
            PodInput(key: p.key, node: p.node, ip: p.ip, hostVeth: p.hostVeth,
                     state: p.phase == .running && !p.isReady ? "NotReady" : p.statusText)
        }
        return build(cluster: state.name, underlay: try view(Naming.underlayNetns(state.name)),
                     underlaySubnet: state.spec.network.underlaySubnet, nodes: nodes, pods: pods, services: state.services)
    }

    /// The drawing as SVG, through Graphviz's dot (for `graph -o svg` and the dashboard).
    public func svg() throws(RuntimeError) -> [UInt8] {
        guard let dot = Command.which("dot") else {
            throw .state("Graphviz's dot is not installed (install the graphviz package: make deps); `minik graph -o dot` prints its input")
        }
        let r = try Command.run([dot, "-Tsvg"], input: self.dot(), timeout: 60, outputLimit: 64 << 20)
        // Its output and its warnings come through one pipe: the drawing starts at <svg.
        guard r.succeeded, let start = r.output.range(of: "<svg") else {
            throw .state("dot -Tsvg failed: \(r.output.prefix(500))")
        }
        return Array(r.output[start.lowerBound...].utf8)
    }
}
