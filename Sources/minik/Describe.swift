import ArgumentParser
import Foundation
import MinikRuntime
import MinikSpec

struct Describe: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a pod (node, IP, sandbox, containers, probes, restarts, events) or a service (addresses, ports, endpoints and why some are not ready) in detail.")

    @Argument(help: "pod or svc") var resource: String
    @Argument(help: "Its name.") var podName: String
    @Option(name: .shortAndLong, help: "Namespace of the pod.") var namespace: String = "default"
    @OptionGroup var cluster: ClusterOption

    func run() throws {
        let name = try cluster.resolve()
        let (state, _) = try clusterState(name)
        if ["svc", "service", "services"].contains(resource) {
            guard let st = state.services.first(where: { $0.spec.name == podName && $0.spec.namespace == namespace }) else {
                throw CLIError("service \"\(podName)\" not found in namespace \(namespace)")
            }
            print(describeService(st, proxy: state.proxy), terminator: "")
            return
        }
        guard ["pod", "pods", "po"].contains(resource) else { throw CLIError("describe supports pods and services (minik describe pod|svc NAME)") }
        guard let p = state.pod(podName, namespace: namespace) else {
            throw CLIError("pod \"\(podName)\" not found in namespace \(namespace)")
        }
        let spec = state.spec.pods.first { $0.key == p.key }
        let node = state.nodes.first { $0.name == p.node }
        var out = ""
        func line(_ k: String, _ v: String, indent: Int = 0) {
            let pad = String(repeating: " ", count: indent)
            out += pad + (k + ":").padding(toLength: max(18 - indent, k.count + 2), withPad: " ", startingAt: 0) + v + "\n"
        }
        line("Name", p.name)
        line("Namespace", p.namespace)
        line("Node", "\(p.node)/\(node?.internalIP.description ?? "")")
        line("Start Time", ISO8601DateFormatter().string(from: p.createdAt))
        line("Labels", p.labels.isEmpty ? "<none>" : p.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n" + String(repeating: " ", count: 18)))
        line("Status", p.statusText)
        if let m = p.message { line("Message", m) }
        line("IP", p.ip?.description ?? "<none>")
        line("Sandbox", "pause pid \(p.pid), netns \(p.netns), host veth \(p.hostVeth.isEmpty ? "<none>" : p.hostVeth)")
        if let o = p.owner {
            // As kubectl says it: the pod's ReplicaSet (<deployment>-<pod-template-hash>).
            let hash = p.labels["pod-template-hash"]
            line("Controlled By", o.hasPrefix("Deployment/") && hash != nil ? "ReplicaSet/\(o.dropFirst("Deployment/".count))-\(hash!)" : o)
        }
        func containers(_ title: String, _ list: [ContainerStatus]) {
            guard !list.isEmpty else { return }
            out += "\(title):\n"
            for c in list {
                out += "  \(c.name):\n"
                let cs = (spec?.initContainers ?? []) + (spec?.containers ?? [])
                let cspec = cs.first { $0.name == c.name }
                line("Image", c.image, indent: 4)
                if let cspec {
                    if !cspec.command.isEmpty { line("Command", cspec.command.joined(separator: " "), indent: 4) }
                    if !cspec.args.isEmpty { line("Args", cspec.args.joined(separator: " "), indent: 4) }
                    if !cspec.ports.isEmpty { line("Ports", cspec.ports.map { "\($0.containerPort)/\($0.proto)\($0.name.map { " (\($0))" } ?? "")" }.joined(separator: ", "), indent: 4) }
                }
                switch c.state {
                case .running:
                    line("State", "Running (pid \(c.pid))", indent: 4)
                    if let s = c.startedAt { line("  Started", ISO8601DateFormatter().string(from: s), indent: 4) }
                case .waiting:
                    line("State", "Waiting", indent: 4)
                    if let r = c.reason { line("  Reason", r, indent: 4) }
                    if let m = c.message { line("  Message", m, indent: 4) }
                case .terminated:
                    line("State", "Terminated", indent: 4)
                    if let t = c.termination {
                        line("  Reason", t.reason, indent: 4)
                        if let m = t.message { line("  Message", m, indent: 4) }
                        line("  Exit Code", "\(t.exitCode)", indent: 4)
                    }
                }
                if let t = c.lastTermination {
                    line("Last State", "Terminated", indent: 4)
                    line("  Reason", t.reason, indent: 4)
                    if let m = t.message { line("  Message", m, indent: 4) }
                    line("  Exit Code", "\(t.exitCode)", indent: 4)
                    line("  Finished", ISO8601DateFormatter().string(from: t.finishedAt), indent: 4)
                }
                line("Ready", c.isRunning && c.ready ? "True" : "False", indent: 4)
                if let probe = cspec?.readinessProbe { line("Readiness", probe.summary, indent: 4) }
                if let probe = cspec?.livenessProbe { line("Liveness", probe.summary, indent: 4) }
                if let m = c.probeMessage { line("  Last probe", m, indent: 4) }
                line("Restart Count", "\(c.restartCount)", indent: 4)
            }
        }
        containers("Init Containers", p.initContainers)
        containers("Containers", p.appContainers)
        out += "Events:\n"
        if p.events.isEmpty { out += "  <none>\n" }
        for e in p.events.suffix(20) {
            out += "  \(e.type.padding(toLength: 8, withPad: " ", startingAt: 0))\(e.reason.padding(toLength: 15, withPad: " ", startingAt: 0))\(age(e.time)) ago  \(e.message)\n"
        }
        print(out, terminator: "")
    }
}
