// minik: the command line. Thin: it decodes arguments, talks to a cluster's supervisor
// (or reads its state file), and prints; the work happens in MinikRuntime.
import ArgumentParser
import Foundation
import MinikRuntime
import MinikSpec
import MinikSupervisor

@main
struct Minik: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minik",
        abstract: "A single-host mini cluster network: nodes, pods, bridge CNI and VXLAN overlay in real namespaces.",
        subcommands: [Up.self, Down.self, Get.self, Describe.self, Logs.self, Exec.self, PortForward.self, Apply.self, Delete.self, Scale.self, NodeCommand.self, ExternalCommand.self, FaultCommand.self, PingAllCommand.self, CaptureCommand.self, GraphCommand.self, TraceCommand.self, DashboardCommand.self, Validate.self, Supervise.self]
    )
}

/// An error the CLI prints as it is and exits non-zero with.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct ClusterOption: ParsableArguments {
    @Option(name: .long, help: "The cluster (needed only when several are up).")
    var name: String?

    /// The cluster named, or the only one up.
    func resolve() throws -> String {
        let up = ClusterOption.clusters()
        if let name {
            guard up.contains(name) else {
                throw CLIError("no cluster named \"\(name)\" is up\(up.isEmpty ? "" : " (up: \(up.joined(separator: ", ")))")")
            }
            return name
        }
        switch up.count {
        case 0: throw CLIError("no cluster is up (start one with `minik up cluster.yaml`)")
        case 1: return up[0]
        default: throw CLIError("several clusters are up (\(up.joined(separator: ", "))): pick one with --name")
        }
    }

    static func clusters() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: Naming.stateRoot)) ?? []).filter {
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: Naming.clusterDir($0), isDirectory: &isDir) && isDir.boolValue
        }.sorted()
    }
}

func requireRoot(_ what: String, because why: String = "it works with network namespaces") throws {
    if geteuid() != 0 {
        throw CLIError("\(what) needs root (\(why)): run it with sudo")
    }
}

/// A spec file decoded, validated and its images checked: `validate` and `up` both read
/// it with this, so a file validate calls valid is one up accepts.
func loadSpec(_ path: String) throws -> ClusterSpec {
    do {
        let spec = try SpecLoader.load(path: path)
        for w in spec.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        try ImageStore.located().check(spec)
        return spec
    } catch {
        throw CLIError(error.description)
    }
}

/// The cluster's state: from the supervisor, or from the state file when it is gone.
func clusterState(_ cluster: String) throws -> (ClusterState, live: Bool) {
    if let r = ControlSocket.call(path: Naming.socketPath(cluster), ControlRequest(op: .status), timeout: 10),
       r.ok, let s = r.state {
        return (s, true)
    }
    do {
        var s = try ClusterState.load(cluster: cluster)
        for i in s.pods.indices where s.pods[i].phase == .running && !Sandbox.isAlive(s.pods[i].pid, startTime: s.pods[i].startTime) {
            s.pods[i].phase = .failed
            s.pods[i].message = "the pod's sandbox is gone"
        }
        printErr(supervisorGone(cluster, s))
        return (s, false)
    } catch {
        throw CLIError("\(error)")
    }
}

/// What every command says while a cluster has no supervisor: nothing restarts, probes
/// and the proxy stand still, and what it shows is the state as last written.
func supervisorGone(_ cluster: String, _ state: ClusterState) -> String {
    "warning: the supervisor of cluster \"\(cluster)\" is not running: nothing is restarted or probed and services are not updated; " +
        "this is its state as of \(Supervisor.lastSeen(state)). `minik up \(state.specFile)` adopts the running cluster."
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a spec file and show what `up` would build, creating nothing.")

    @Argument(help: "The spec file.") var file: String

    func run() throws {
        let spec = try loadSpec(file)
        print("\(file): valid. Cluster \"\(spec.name)\": \(spec.nodes.count) nodes, \(spec.pods.count) pods, \(spec.services.count) services, \(spec.network.backend.rawValue) overlay")
        for n in spec.nodes {
            print("  \(n.name)  \(n.role.rawValue)  \(n.internalIP)  podCIDR \(n.podCIDR)  pods \(spec.pods(on: n.name).count)")
        }
        for s in spec.services {
            print("  service \(s.key)  \(s.type.rawValue)  \(Get.clusterIP(s))  \(Get.ports(s))")
        }
        if let ip = spec.dnsServiceIP {
            let upstream = spec.dns.upstreams.isEmpty ? "none (other names are REFUSED)" : spec.dns.upstreams.map(\.description).joined(separator: ", ")
            print("  cluster DNS: zone \(spec.dns.clusterDomain) at \(ip), \(spec.dns.replicas) pods \(ClusterDNS.deploymentKey)-N, TTL \(spec.dns.ttl) s, upstream \(upstream)")
        } else {
            print("  cluster DNS: off")
        }
    }
}
