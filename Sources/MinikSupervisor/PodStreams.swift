// The node's half of exec, attach and port-forward (kubelet's streaming server): which
// container a request means, the command started in it as `minik exec` starts one (its
// namespaces, cgroups, confinement, and a terminal of the container's own devpts), and
// the TCP connection made inside the pod's network namespace to 127.0.0.1:port, as
// kubelet makes it, so a server bound to the pod's loopback is reachable.
import Foundation
import MinikAPI
import MinikRuntime
import MinikSpec

extension ClusterAPI {
    public func checkStream(_ r: StreamRequest) throws(APIError) {
        // (On an event loop: no /proc checks of every pod; runningPod checks this one.)
        let state = runtime.state(verify: false)
        let p = try runningPod(r, state)
        if r.kind != .portforward { _ = try streamContainer(r, p) }
    }

    public func exec(_ r: StreamRequest) throws(APIError) -> ContainerExec {
        let state = runtime.state(verify: false)
        let p = try runningPod(r, state)
        let c = try streamContainer(r, p)
        let cspec = state.spec.pods.first { $0.key == p.key }.flatMap { s in (s.initContainers + s.containers + s.ephemeralContainers).first { $0.name == c.name } }
        do {
            let entry = try ContainerEntry(pid: c.pid, container: cspec)
            var env = entry.env
            if r.tty { env.append("TERM=xterm") }
            return try ContainerExec(r.command, in: entry, env: env, stdin: r.stdin, tty: r.tty, rows: r.rows, cols: r.cols)
        } catch {
            // The session reports it as kubelet does ("error executing command in container").
            throw APIError(500, "InternalError", "\(error)")
        }
    }

    public func attach(_ r: StreamRequest) throws(APIError) -> AttachTarget {
        let state = runtime.state(verify: false)
        let p = try runningPod(r, state)
        let c = try streamContainer(r, p)
        let key = "\(p.key)/\(c.name)"
        let pid = c.pid, start = c.startTime
        let logs = runtime.logs
        return AttachTarget(console: runtime.console(pod: p.key, container: c.name),
                            follow: { body in
                                let token = logs.listen(key, body)
                                return { logs.unlisten(key, token) }
                            },
                            running: { Sandbox.isAlive(pid, startTime: start) })
    }

    public func connect(namespace: String, pod: String, port: Int) throws(APIError) -> Int32 {
        var r = StreamRequest(kind: .portforward, namespace: namespace, pod: pod)
        r.ports = [port]
        let p = try runningPod(r, runtime.state(verify: false))
        let ns: NetNamespace
        do { ns = try NetNamespace.open(p.netns) } catch {
            throw APIError(500, "InternalError", "error forwarding port \(port) to pod \(pod): \(error)")
        }
        switch ns.connectTCP(to: IPv4Address(127, 0, 0, 1), port: port, timeoutMs: 5000) {
        case .connected(let fd): return fd
        case .failed(let e):
            // kubelet's words (through socat or its own dialer), which kubectl prints.
            throw APIError(500, "InternalError",
                           "error forwarding port \(port) to pod \(pod): failed to connect to localhost:\(port) inside namespace of pod \(namespace)/\(pod): \(String(cString: strerror(e)))")
        }
    }

    func runningPod(_ r: StreamRequest, _ state: ClusterState) throws(APIError) -> PodState {
        guard let p = state.pod(r.pod, namespace: r.namespace) else { throw APIError.notFound("pods", r.pod) }
        guard p.phase == .running, Sandbox.isAlive(p.pid, startTime: p.startTime) else {
            throw APIError.badRequest("pod \(r.pod) is not running (\(p.statusText))")
        }
        return p
    }

    /// The container `name` names, or the pod's only app container, as the apiserver
    /// picks one for logs, exec and attach.
    func container(_ name: String?, in p: PodState) throws(APIError) -> ContainerStatus {
        if let name {
            guard let found = p.containers.first(where: { $0.name == name }) else {
                throw APIError.badRequest("container \(name) is not valid for pod \(p.name)")
            }
            return found
        }
        let app = p.appContainers
        guard !app.isEmpty else { throw APIError.badRequest("pod \(p.name) has no containers") }
        if app.count > 1 {
            throw APIError.badRequest("a container name must be specified for pod \(p.name), choose one of: [\(app.map(\.name).joined(separator: " "))]")
        }
        return app[0]
    }

    /// The container a request names, or the pod's only app container; it must run.
    func streamContainer(_ r: StreamRequest, _ p: PodState) throws(APIError) -> ContainerStatus {
        let c = try container(r.container, in: p)
        guard c.isRunning, Sandbox.isAlive(c.pid, startTime: c.startTime) else {
            throw APIError.badRequest("container \(c.name) is not running in pod \(p.name)")
        }
        return c
    }
}
