import ArgumentParser
import Foundation
import MinikRuntime
import MinikSpec
import MinikSupervisor

/// Sends the desired spec to the supervisor and prints what changed.
func update(_ cluster: String, to desired: ClusterSpec) throws {
    let problems = ImageStore.located().problems(in: desired)
    if !problems.isEmpty { throw CLIError(SpecError(problems).description) }
    guard let r = ControlSocket.call(path: Naming.socketPath(cluster), ControlRequest(op: .update, spec: desired), timeout: 120) else {
        throw CLIError("the supervisor of cluster \(cluster) does not answer; pods cannot change without it")
    }
    if let m = r.message, !m.isEmpty { print(m) }
    if !r.ok { throw ExitCode.failure }
}

func runningSpec(_ cluster: String) throws -> ClusterSpec {
    let (state, live) = try clusterState(cluster)
    guard live else {
        throw CLIError("the supervisor of cluster \(cluster) is not running; nothing can change without it: `minik up \(state.specFile)` adopts the running cluster")
    }
    return state.spec
}

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or replace pods, deployments, services and namespaces of a running cluster.")

    @Option(name: .shortAndLong, help: "A file of Pods, Deployments, Services, Namespaces.") var filename: String
    @OptionGroup var cluster: ClusterOption

    func run() throws {
        try requireRoot("minik apply")
        let name = try cluster.resolve()
        let base = try runningSpec(name)
        guard let text = try? String(contentsOfFile: filename, encoding: .utf8) else { throw CLIError("\(filename): cannot read the file") }
        let desired: ClusterSpec
        do { desired = try SpecLoader.apply(text, file: filename, to: base) } catch { throw CLIError(error.description) }
        for w in desired.warnings { printErr("warning: \(w)") }
        for d in desired.deployments where !base.deployments.contains(where: { $0 == d }) {
            print("deployment.apps/\(d.name) \(base.deployments.contains { $0.key == d.key } ? "configured" : "created")")
        }
        try update(name, to: desired)
    }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a pod, a deployment (and its pods) or a service; IPs go back to the pool.")

    @Argument(help: "pod, deployment or service") var resource: String?
    @Argument(help: "Its name.") var name: String?
    @Option(name: .shortAndLong, help: "Namespace.") var namespace: String = "default"
    @Option(name: .shortAndLong, help: "Delete what a file describes.") var filename: String?
    @OptionGroup var cluster: ClusterOption

    func run() throws {
        try requireRoot("minik delete")
        let c = try cluster.resolve()
        var desired = try runningSpec(c)
        do {
            if let filename {
                guard let text = try? String(contentsOfFile: filename, encoding: .utf8) else { throw CLIError("\(filename): cannot read the file") }
                var empty = desired
                empty.pods = []
                empty.deployments = []
                empty.services = []
                let described = try SpecLoader.apply(text, file: filename, to: empty)
                for d in described.deployments { desired = try desired.removing(deployment: d.name, namespace: d.namespace) }
                for p in described.pods where p.owner == nil { desired = try desired.removing(pod: p.name, namespace: p.namespace) }
                for s in described.services { desired = try desired.removing(service: s.name, namespace: s.namespace) }
            } else {
                guard let resource, let name else { throw CLIError("usage: minik delete pod|deployment NAME, or minik delete -f FILE") }
                switch resource {
                case "pod", "pods", "po":
                    if let owner = desired.pods.first(where: { $0.name == name && $0.namespace == namespace })?.owner {
                        throw CLIError("pod \(name) belongs to \(owner), which would re-create it: delete or scale the deployment instead")
                    }
                    desired = try desired.removing(pod: name, namespace: namespace)
                case "deployment", "deployments", "deploy":
                    desired = try desired.removing(deployment: name, namespace: namespace)
                    print("deployment.apps/\(name) deleted")
                case "service", "services", "svc":
                    desired = try desired.removing(service: name, namespace: namespace)
                default:
                    throw CLIError("cannot delete \"\(resource)\" (use pod, deployment or service)")
                }
            }
        } catch let e as SpecError {
            throw CLIError(e.description)
        }
        try update(c, to: desired)
    }
}

struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Set the number of replicas of a deployment.")

    @Argument(help: "deployment") var resource: String
    @Argument(help: "Its name.") var name: String
    @Option(help: "The number of pods.") var replicas: Int
    @Option(name: .shortAndLong, help: "Namespace.") var namespace: String = "default"
    @OptionGroup var cluster: ClusterOption

    func run() throws {
        try requireRoot("minik scale")
        guard ["deployment", "deployments", "deploy"].contains(resource) else { throw CLIError("scale supports deployments") }
        let c = try cluster.resolve()
        let desired: ClusterSpec
        do { desired = try runningSpec(c).scaled(deployment: name, namespace: namespace, replicas: replicas) } catch let e as SpecError {
            throw CLIError(e.description)
        }
        print("deployment.apps/\(name) scaled")
        try update(c, to: desired)
    }
}
