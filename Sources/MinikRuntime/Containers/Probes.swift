// kubelet's prober: readiness and liveness probes per running container. exec runs the
// command inside the container (its namespaces, capabilities and seccomp filter);
// httpGet and tcpSocket connect from the node's network namespace to the pod's IP, as
// kubelet does from the host. A readiness result flips the container's `ready` after
// successThreshold / failureThreshold results in a row (and the service endpoints with
// it); a liveness failure restarts the container. Each probe of each container attempt
// runs on its own timer; a new attempt (new pid) ends the old attempt's probes.
import Foundation
import MinikSpec

public enum ProbeResult: Sendable, Equatable {
    case success
    case failure(String)
}

extension ClusterRuntime {
    enum ProbeKind: String { case readiness = "Readiness", liveness = "Liveness" }

    /// Starts the probes of a container that just started (pid).
    func startProbes(_ key: String, _ c: ContainerSpec, pid: Int32) {
        for (probe, kind) in [(c.readinessProbe, ProbeKind.readiness), (c.livenessProbe, ProbeKind.liveness)] {
            guard let probe else { continue }
            schedule(key, c.name, pid: pid, probe: probe, kind: kind, after: probe.initialDelaySeconds, successes: 0, failures: 0)
        }
    }

    private func schedule(_ key: String, _ name: String, pid: Int32, probe: Probe, kind: ProbeKind, after delay: Double,
                          successes: Int, failures: Int) {
        DispatchQueue.global().asyncAfter(deadline: .now() + max(delay, 0)) { [self] in
            guard let target = probeTarget(key, name, pid: pid) else { return }
            let result = runProbe(probe, target: target)
            var s = successes, f = failures
            switch result {
            case .success: s += 1; f = 0
            case .failure: f += 1; s = 0
            }
            guard record(key, name, pid: pid, kind: kind, probe: probe, result: result, successes: s, failures: f) else { return }
            schedule(key, name, pid: pid, probe: probe, kind: kind, after: probe.periodSeconds, successes: s, failures: f)
        }
    }

    struct ProbeTarget {
        var pid: Int32
        var ip: IPv4Address
        var node: NodeRuntime
        var pod: PodSpec
        var container: ContainerSpec
    }

    /// The container, if that attempt still runs.
    private func probeTarget(_ key: String, _ name: String, pid: Int32) -> ProbeTarget? {
        lock.lock()
        defer { lock.unlock() }
        guard !stopping, let st = pods.first(where: { $0.key == key }), st.phase == .running, let ip = st.ip,
              let c = st.containers.first(where: { $0.name == name }), c.isRunning, c.pid == pid,
              let p = _spec.pods.first(where: { $0.key == key }), let cs = p.containers.first(where: { $0.name == name }),
              let node = nodes.first(where: { $0.spec.name == st.node }) else { return nil }
        return ProbeTarget(pid: pid, ip: ip, node: node, pod: p, container: cs)
    }

    /// Records a result; false when the container attempt is gone (stop probing).
    private func record(_ key: String, _ name: String, pid: Int32, kind: ProbeKind, probe: Probe, result: ProbeResult,
                        successes: Int, failures: Int) -> Bool {
        lock.lock()
        guard !stopping, let i = pods.firstIndex(where: { $0.key == key }),
              let j = pods[i].containers.firstIndex(where: { $0.name == name }), pods[i].containers[j].pid == pid,
              pods[i].containers[j].isRunning else {
            lock.unlock()
            return false
        }
        var changed = false
        var kill = false
        if case .failure(let why) = result {
            let message = "\(kind.rawValue) probe failed: \(why)"
            pods[i].containers[j].probeMessage = message
            // kubelet reports every failure as an Unhealthy event; keep the last, counted.
            if let last = pods[i].events.last, last.reason == "Unhealthy", last.message.hasSuffix(message) {
                pods[i].events[pods[i].events.count - 1].time = Date()
            } else {
                pods[i].events.append(PodEvent(time: Date(), type: "Warning", reason: "Unhealthy", message: "\(name): \(message)"))
            }
        }
        switch kind {
        case .readiness:
            let ready = pods[i].containers[j].ready
            if !ready && successes >= probe.successThreshold {
                pods[i].containers[j].ready = true
                pods[i].containers[j].probeMessage = nil
                changed = true
            } else if ready && failures >= probe.failureThreshold {
                pods[i].containers[j].ready = false
                changed = true
            }
        case .liveness:
            if failures >= probe.failureThreshold {
                pods[i].events.append(PodEvent(time: Date(), type: "Normal", reason: "Killing",
                                               message: "Container \(name) failed liveness probe, will be restarted"))
                kill = true
            }
        }
        lock.unlock()
        if changed { proxyDirty() }
        if kill {
            Foundation.kill(pid, SIGTERM)
            DispatchQueue.global().asyncAfter(deadline: .now() + 2) {
                if self.containerPID(key, name) == pid { Foundation.kill(pid, SIGKILL) }
            }
            return false
        }
        return true
    }

    private func containerPID(_ key: String, _ name: String) -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        return pods.first { $0.key == key }?.containers.first { $0.name == name }?.pid
    }

    func runProbe(_ probe: Probe, target t: ProbeTarget) -> ProbeResult {
        switch probe.action {
        case .exec(let argv):
            return Probes.exec(argv, pid: t.pid, container: t.container, timeout: probe.timeoutSeconds)
        case .httpGet(let path, let port):
            guard let n = port.resolve(in: t.container) else { return .failure("unknown port \"\(port)\"") }
            return Probes.httpGet(node: t.node.netns, ip: t.ip, port: n, path: path, timeout: probe.timeoutSeconds)
        case .tcpSocket(let port):
            guard let n = port.resolve(in: t.container) else { return .failure("unknown port \"\(port)\"") }
            switch Probes.connect(node: t.node.netns, ip: t.ip, port: n, timeout: probe.timeoutSeconds) {
            case .success(let fd):
                close(fd)
                return .success
            case .failure(let why):
                return .failure(why)
            }
        }
    }
}

public enum Probes {
    /// Runs argv inside the container (pid): exit 0 is success.
    static func exec(_ argv: [String], pid: Int32, container c: ContainerSpec, timeout: Double) -> ProbeResult {
        do {
            let entry = try ContainerEntry(pid: pid, container: c)
            let r = try Command.run(argv, in: entry, timeout: timeout)
            if r.timedOut { return .failure("command \(quoted(argv)) timed out after \(Int(timeout))s") }
            if r.exitCode == 0 { return .success }
            let out = r.output.trimmingCharacters(in: .whitespacesAndNewlines)
            return .failure("command \(quoted(argv)) exited with \(r.exitCode)\(out.isEmpty ? "" : ": \(out.prefix(200))")")
        } catch {
            return .failure("\(error)")
        }
    }

    static func quoted(_ argv: [String]) -> String { "\"" + argv.joined(separator: " ") + "\"" }

    enum Connected { case success(Int32), failure(String) }

    /// A TCP connection from the node's namespace to ip:port within the timeout, or the
    /// failure worded as kubelet's Go dialer words it.
    static func connect(node: NetNamespace, ip: IPv4Address, port: Int, timeout: Double) -> Connected {
        switch node.connectTCP(to: ip, port: port, timeoutMs: Int32(timeout * 1000)) {
        case .connected(let fd): return .success(fd)
        case .failed(ETIMEDOUT): return .failure("dial tcp \(ip):\(port): i/o timeout")
        case .failed(let e): return .failure("dial tcp \(ip):\(port): connect: \(String(cString: strerror(e)).lowercased())")
        }
    }

    /// GET http://ip:port/path from the node; a status from 200 to 399 is success.
    static func httpGet(node: NetNamespace, ip: IPv4Address, port: Int, path: String, timeout: Double) -> ProbeResult {
        let url = "http://\(ip):\(port)\(path)"
        let deadline = Date().addingTimeInterval(timeout)
        let fd: Int32
        switch connect(node: node, ip: ip, port: port, timeout: timeout) {
        case .success(let f): fd = f
        case .failure(let why): return .failure("Get \"\(url)\": \(why)")
        }
        defer { close(fd) }
        let request = "GET \(path) HTTP/1.1\r\nHost: \(ip):\(port)\r\nUser-Agent: kube-probe/1.31\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 1024)
        while !response.contains(0x0a) && response.count < 4096 {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            if poll(&p, 1, left) <= 0 { return .failure("Get \"\(url)\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)") }
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            response += buf[0..<n]
        }
        let line = String(decoding: response.prefix { $0 != 0x0d && $0 != 0x0a }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else {
            return .failure("Get \"\(url)\": malformed HTTP response \"\(line.prefix(60))\"")
        }
        return (200..<400).contains(code) ? .success : .failure("HTTP probe failed with statuscode: \(code)")
    }
}
