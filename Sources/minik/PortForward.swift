import ArgumentParser
import Foundation
import MinikRuntime
import MinikSpec

/// `minik port-forward`: kubectl port-forward's job without the API in between. The
/// connections are made as kubelet (and the API server's port-forward) make them:
/// from inside the pod's network namespace to its 127.0.0.1:PORT, so a server bound to
/// the pod's loopback is reachable; this process listens on 127.0.0.1 only.
struct PortForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port-forward",
        abstract: "Forward local ports (127.0.0.1) to a pod's ports, until interrupted.")

    @Option(name: .shortAndLong, help: "Namespace of the pod.") var namespace: String = "default"
    @OptionGroup var cluster: ClusterOption
    @Argument(help: "The pod.") var pod: String
    @Argument(help: "[LOCAL:]REMOTE: a local port on 127.0.0.1 and the pod's port (the same when LOCAL is left out).") var ports: [String]

    func run() throws {
        try requireRoot("minik port-forward")
        var pairs: [(local: Int, remote: Int)] = []
        for p in ports {
            let parts = p.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2, let remote = Int(parts.last!), (1...65535).contains(remote),
                  let local = parts.count == 2 ? Int(parts[0]) : remote, (1...65535).contains(local) else {
                throw CLIError("\"\(p)\" is not a port mapping: [LOCAL:]REMOTE, each a port from 1 to 65535")
            }
            pairs.append((local, remote))
        }
        guard !pairs.isEmpty else { throw CLIError("no ports: minik port-forward POD [LOCAL:]REMOTE...") }
        let name = try cluster.resolve()
        let (state, _) = try clusterState(name)
        guard let p = state.pod(pod, namespace: namespace) else {
            throw CLIError("pod \"\(pod)\" not found in namespace \(namespace) of cluster \(name)")
        }
        guard p.phase == .running, Sandbox.isAlive(p.pid, startTime: p.startTime) else {
            throw CLIError("pod \(namespace)/\(pod) is not running (\(p.statusText))")
        }
        let netns: NetNamespace
        do { netns = try NetNamespace.open(p.netns) } catch { throw CLIError("\(error)") }
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        var forwarders: [PortForwarder] = []
        for (local, remote) in pairs {
            let f = PortForwarder(hostPort: local, proto: "TCP", targetIP: IPv4Address(127, 0, 0, 1), targetPort: remote, underlay: netns)
            do { try f.start() } catch {
                forwarders.forEach { $0.stop() }
                throw CLIError("\(error)")
            }
            forwarders.append(f)
            // Written at once (stdout may be a pipe a script waits on).
            FileHandle.standardOutput.write(Data("Forwarding from 127.0.0.1:\(local) -> \(remote)\n".utf8))
        }
        // Until ^C or a TERM (blocked before the forwarders' threads start, so that
        // they inherit the mask and this thread takes the signal); then every connection
        // is closed.
        var sig: Int32 = 0
        sigwait(&set, &sig)
        forwarders.forEach { $0.stop() }
    }
}
