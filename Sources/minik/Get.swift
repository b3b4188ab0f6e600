import ArgumentParser
import Foundation
import MinikRuntime
import MinikSpec
import MinikAPI
import Yams

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table = "", wide, json, yaml
}

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List any resource the cluster's API serves (nodes, pods, services, endpoints, deployments, events...), as kubectl prints it; or clusters, the proxy, a kubeconfig.")

    @Argument(help: "nodes, pods (po), services (svc), endpoints (ep), endpointslices, deployments (deploy), replicasets (rs), events (ev), namespaces (ns), configmaps (cm), networkpolicies (netpol); or proxy, clusters, kubeconfig.") var resource: String
    @Argument(help: "Only this one.") var name: String?
    @Option(name: .shortAndLong, help: "Output format: wide, json or yaml.") var output: OutputFormat = .table
    @Option(name: .shortAndLong, help: "Namespace.") var namespace: String = "default"
    @Flag(name: [.customShort("A"), .long], help: "Every namespace.") var allNamespaces = false
    @Option(name: [.customShort("l"), .long], help: "A label selector (app=web, tier in (a,b), !canary).") var selector: String?
    @OptionGroup var cluster: ClusterOption

    func run() throws {
        switch resource {
        case "clusters", "cluster":
            // The state directory is root's (0700): for anyone else it looks empty.
            try requireRoot("minik get clusters", because: "the clusters' state under \(Naming.stateRoot) is readable by root only")
            let list = ClusterOption.clusters()
            if list.isEmpty { printErr("No clusters found.") }
            list.forEach { print($0) }
            return
        case "proxy": try printProxy(try state())
        case "kubeconfig":
            // As `kind get kubeconfig`: the cluster's own, for KUBECONFIG=... or a merge.
            try requireRoot("minik get kubeconfig", because: "the cluster's credentials are readable by root only")
            let c = try cluster.resolve()
            guard let text = try? String(contentsOfFile: Naming.kubeconfigFile(c), encoding: .utf8) else {
                throw CLIError("cluster \(c) has no kubeconfig (\(Naming.kubeconfigFile(c))); it was made by a minik without the API")
            }
            print(text, terminator: "")
        default:
            try printResource(try resolveResource(resource), try state())
        }
    }

    func state() throws -> ClusterState { try clusterState(try cluster.resolve()).0 }

    /// The objects as the API serves them (the same view of the state, the same printers):
    /// what kubectl prints, also while the supervisor is down (from the state file).
    func printResource(_ r: APIResource, _ state: ClusterState) throws {
        let view = ObjectsView(state: state, host: HostInfo.read())
        var objects = view.objects(r.resource).sorted { $0.key < $1.key }.map(\.value)
        if r.empty { objects = [] }
        if r.namespaced && !allNamespaces { objects = objects.filter { $0["metadata"]?["namespace"]?.string == namespace } }
        if let selector {
            let sel: LabelSelector
            do { sel = try LabelSelector.parse(selector) } catch { throw CLIError("error: \(error)") }
            objects = objects.filter { sel.matches($0["metadata"]?["labels"]?.stringMap ?? [:]) }
        }
        if let name {
            objects = objects.filter { $0["metadata"]?["name"]?.string == name }
            if objects.isEmpty { throw CLIError("Error from server (NotFound): \(r.group.isEmpty ? r.resource : "\(r.resource).\(r.group)") \"\(name)\" not found") }
        }
        switch output {
        case .json, .yaml:
            let doc: JSON = name != nil ? objects[0]
                : ["apiVersion": "v1", "kind": "List", "items": .array(objects), "metadata": ["resourceVersion": ""]]
            if output == .json { print(doc.pretty()) } else { print(try Yams.dump(object: doc.any, sortKeys: true), terminator: "") }
        case .table, .wide:
            if objects.isEmpty {
                printErr(r.namespaced && !allNamespaces ? "No resources found in \(namespace) namespace." : "No resources found")
                return
            }
            let table = Printers.table(r.resource, objects: objects, revision: nil, now: Date())
            let wide = output == .wide
            let columns = (table["columnDefinitions"]?.array ?? []).enumerated().filter { wide || $0.element["priority"]?.int == 0 }
            var header = columns.map { ($0.element["name"]?.string ?? "").uppercased() }
            // minik's own: where to look with `ip netns exec`.
            let netns = wide && (r.resource == "pods" || r.resource == "nodes")
            if netns { header.append("NETNS") }
            let namespaced = r.namespaced && allNamespaces
            if namespaced { header.insert("NAMESPACE", at: 0) }
            var rows = [header]
            for row in table["rows"]?.array ?? [] {
                let cells = row["cells"]?.array ?? []
                var line = columns.map { c -> String in
                    guard c.offset < cells.count else { return "" }
                    switch cells[c.offset] {
                    case .string(let s): return s
                    case .int(let i): return String(i)
                    default: return cells[c.offset].text
                    }
                }
                let meta = row["object"]?["metadata"]
                if netns { line.append(meta?["annotations"]?["minik.dev/netns"]?.string ?? "<none>") }
                if namespaced { line.insert(meta?["namespace"]?.string ?? "", at: 0) }
                rows.append(line)
            }
            printTable(rows)
        }
    }
}

func age(_ since: Date) -> String {
    let s = Int(Date().timeIntervalSince(since))
    if s < 120 { return "\(max(s, 0))s" }
    if s < 3600 { return "\(s / 60)m" }
    if s < 86400 { return "\(s / 3600)h\((s % 3600) / 60)m" }
    return "\(s / 86400)d"
}

func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    var widths = first.map(\.count)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    for r in rows {
        let cells = r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i] + 3, withPad: " ", startingAt: 0) }
        print(cells.joined())
    }
}

