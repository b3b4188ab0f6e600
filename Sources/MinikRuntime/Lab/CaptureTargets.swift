// What `minik capture` is asked to capture, as words on its command line, turned into
// (namespace, interface) pairs. Pure: the cluster's nodes and pods and a way to list a
// namespace's interfaces are given.
//
//   lab-worker eth0 lab-worker2 flannel.1    a node, then the interfaces wanted in it
//   lab-worker                               every interface of the node (but lo)
//   node/lab-worker cni0                     the same, spelled out
//   pod/web-0, pod/backend/db                a pod's eth0 (namespace: -n, or default)
//   underlay [lab-1]                         the underlay bridge (or its ports)
//   external                                 the external host's interfaces
public enum CaptureTargets {
    public struct Cluster: Sendable {
        public var name: String
        public var nodes: [(name: String, netns: String)]
        public var pods: [(namespace: String, name: String, netns: String)]

        public init(name: String, nodes: [(name: String, netns: String)], pods: [(namespace: String, name: String, netns: String)]) {
            self.name = name
            self.nodes = nodes
            self.pods = pods
        }
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The interfaces the words name, in order, each once. `interfaces(netns)` lists a
    /// namespace's interface names.
    public static func resolve(_ words: [String], namespace: String, cluster: Cluster,
                               interfaces: (String) -> [String]) throws(Failure) -> [Capture.Interface] {
        guard !words.isEmpty else {
            throw Failure(description: "nothing to capture: name a node (and its interfaces), pod/NAME, underlay or external")
        }
        struct Group { var label: String; var netns: String; var what: String; var defaults: [String]; var chosen: [String] }
        var groups: [Group] = []
        func open(_ label: String, _ netns: String, _ what: String, defaults: [String]? = nil) {
            let all = interfaces(netns).filter { $0 != "lo" }
            groups.append(Group(label: label, netns: netns, what: what, defaults: defaults ?? all, chosen: []))
        }
        for word in words {
            if word.hasPrefix("pod/") {
                let parts = word.dropFirst(4).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                let (ns, name) = parts.count == 2 ? (parts[0], parts[1]) : (namespace, parts.joined(separator: "/"))
                guard let pod = cluster.pods.first(where: { $0.namespace == ns && $0.name == name }) else {
                    throw Failure(description: "pod \"\(name)\" not found in namespace \(ns) of cluster \(cluster.name)")
                }
                open("\(ns)/\(name)", pod.netns, "pod \(ns)/\(name)", defaults: ["eth0"])
            } else if let node = cluster.nodes.first(where: { $0.name == word || "node/\($0.name)" == word }) {
                open(node.name, node.netns, "node \(node.name)")
            } else if word == "underlay" {
                open("underlay", Naming.underlayNetns(cluster.name), "the underlay", defaults: [Naming.underlayBridge(cluster.name)])
            } else if word == "external" {
                open("external", Naming.externalNetns(cluster.name), "the external host")
            } else if let last = groups.indices.last, interfaces(groups[last].netns).contains(word) {
                groups[last].chosen.append(word)
            } else {
                var hint = "nodes: \(cluster.nodes.map(\.name).joined(separator: ", ")); pods as pod/NAME; underlay; external"
                if let last = groups.last {
                    hint = "interfaces of \(last.what): \(interfaces(last.netns).joined(separator: ", ")); " + hint
                }
                throw Failure(description: "\"\(word)\" is not something to capture on (\(hint))")
            }
        }
        var out: [Capture.Interface] = []
        var seen = Set<String>()
        for g in groups {
            let names = g.chosen.isEmpty ? g.defaults : g.chosen
            if names.isEmpty { throw Failure(description: "\(g.what) has no interface to capture on") }
            for i in names where seen.insert("\(g.netns)\u{0}\(i)").inserted {
                out.append(Capture.Interface(netns: g.netns, interface: i, label: "\(g.label):\(i)",
                                             description: "\(i) of \(g.what) (network namespace \(g.netns))"))
            }
        }
        return out
    }
}
