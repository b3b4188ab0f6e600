// The kubelet part of the runtime: init containers in order and to completion, then the
// app containers; exits reaped by the supervisor are turned into container states, and
// restartPolicy decides what happens next, with kubelet's exponential back-off (the first
// delay from the spec, doubling, capped at 30 s, reset once a container ran 60 s). A dead
// pause process means a dead sandbox: the pod is recreated (same IP: IPAM keys on the pod).
// Every state change happens under the runtime's lock; spawning happens outside it, and
// an exit that arrives before its pid is recorded waits in earlyExits.
import Foundation
import MinikSpec

/// kubelet's restart back-off, pure: the delay before this restart and the one after.
public enum Backoff {
    public static let max: Double = 30
    public static let reset: Double = 60

    /// `current` is the delay due now (nil: first restart); a container that ran for
    /// `reset` seconds or more starts over at `initial`. An initial of 0 turns it off.
    public static func step(current: Double?, ranFor: Double, initial: Double) -> (delay: Double, next: Double) {
        if initial <= 0 { return (0, 0) }
        let delay = (ranFor >= reset ? nil : current) ?? initial
        return (delay, Swift.min(delay * 2, max))
    }
}

extension ContainerSpec {
    /// An init container: never "ready" (only app containers count for the pod).
    func isInitLike(_ p: PodSpec) -> Bool { p.initContainers.contains { $0.name == name } }
}

extension ClusterRuntime {
    static func waiting(_ c: ContainerSpec, isInit: Bool, reason: String) -> ContainerStatus {
        ContainerStatus(name: c.name, image: c.image, isInit: isInit, state: .waiting, reason: reason, message: nil,
                        pid: 0, startTime: 0, startedAt: nil, restartCount: 0, lastTermination: nil,
                        termination: nil, nextStart: nil)
    }

    func podSpec(_ key: String) -> PodSpec? { spec.pods.first { $0.key == key } }

    /// Starts whatever should run next in the pod: the first unfinished init container,
    /// or (all inits done) every app container that is waiting to be created.
    func startNext(_ key: String) {
        guard let p = podSpec(key) else { return }
        lock.lock()
        guard !stopping, let i = pods.firstIndex(where: { $0.key == key }), pods[i].phase == .running else { lock.unlock(); return }
        let statuses = pods[i].containers
        lock.unlock()
        if let next = statuses.first(where: { $0.isInit && !($0.state == .terminated && $0.termination?.exitCode == 0) }) {
            if next.state == .waiting && next.nextStart == nil { launch(key, next.name, spec: p) }
            return
        }
        // (Ephemeral containers are started when they are added, and only then.)
        for c in statuses where !c.isInit && !c.ephemeral && c.state == .waiting && c.nextStart == nil {
            launch(key, c.name, spec: p)
        }
    }

    /// Spawns one container and records it running, or records why it could not start.
    func launch(_ key: String, _ name: String, spec p: PodSpec) {
        guard let c = (p.initContainers + p.containers + p.ephemeralContainers).first(where: { $0.name == name }) else { return }
        lock.lock()
        guard !stopping, let i = pods.firstIndex(where: { $0.key == key }),
              let j = pods[i].containers.firstIndex(where: { $0.name == name }) else { lock.unlock(); return }
        let pausePID = pods[i].pid
        let attempt = pods[i].containers[j].restartCount
        pods[i].containers[j].nextStart = nil
        lock.unlock()
        guard let image = images.image(c.image) else {
            record(key, name, failure: "image \"\(c.image)\" is not available")
            return
        }
        do throws(RuntimeError) {
            let api = spec.services.first { $0.key == APIService.key }?.clusterIP
            var target: Int32?
            if let name = c.targetContainerName {
                target = ephemeralTarget(c, pod: key)
                if target == nil { throw RuntimeError.state("its target container \(name) is not running") }
            }
            let started = try ContainerRunner.start(cluster: spec.name, pod: p, container: c, image: image,
                                                    pausePID: pausePID, attempt: attempt, logs: logs, apiService: api,
                                                    pidNamespaceOf: target)
            lock.lock()
            var early: Int32?
            if let i = pods.firstIndex(where: { $0.key == key }), let j = pods[i].containers.firstIndex(where: { $0.name == name }) {
                pods[i].containers[j].state = .running
                pods[i].containers[j].reason = nil
                pods[i].containers[j].message = nil
                pods[i].containers[j].termination = nil
                pods[i].containers[j].pid = started.pid
                pods[i].containers[j].startTime = started.startTime
                pods[i].containers[j].startedAt = Date()
                pods[i].containers[j].ready = !c.isInitLike(p) && c.readinessProbe == nil
                pods[i].containers[j].probeMessage = nil
                pods[i].events.append(PodEvent(time: Date(), type: "Normal", reason: "Started",
                                               message: "Started container \(name) (pid \(started.pid))"))
                pidIndex[started.pid] = (key, name)
                consoles.removeValue(forKey: "\(key)/\(name)")?.close()
                if let console = started.console { consoles["\(key)/\(name)"] = console }
                adopted.removeValue(forKey: started.pid)
                early = earlyExits.removeValue(forKey: started.pid)
            }
            lock.unlock()
            startProbes(key, c, pid: started.pid)
            proxyDirty()
            if let status = early { reaped(pid: started.pid, status: status) }
        } catch {
            record(key, name, failure: error.description)
        }
    }

    /// A container that could not start: waiting with RunContainerError, then retried by
    /// its restart policy like an exit with code 128.
    func record(_ key: String, _ name: String, failure message: String) {
        lock.lock()
        guard let i = pods.firstIndex(where: { $0.key == key }), let j = pods[i].containers.firstIndex(where: { $0.name == name }) else {
            lock.unlock()
            return
        }
        pods[i].events.append(PodEvent(time: Date(), type: "Warning", reason: "Failed", message: "Error: \(message)"))
        let t = ContainerStatus.Termination(exitCode: 128, signal: nil, reason: "StartError", message: message,
                                            startedAt: nil, finishedAt: Date())
        pods[i].containers[j].state = .terminated
        pods[i].containers[j].termination = t
        pods[i].containers[j].pid = 0
        lock.unlock()
        afterExit(key, name, termination: t, ranFor: 0)
    }

    /// Called by the supervisor for every child it reaps.
    public func reaped(pid: Int32, status: Int32) {
        lock.lock()
        guard let owner = pidIndex.removeValue(forKey: pid) else {
            // Not ours yet (spawned, not recorded) or not a pod's: remember briefly.
            if !stopping { earlyExits[pid] = status }
            if earlyExits.count > 4096 { earlyExits.removeAll() }
            lock.unlock()
            return
        }
        if stopping { lock.unlock(); return }
        guard let name = owner.container else {
            lock.unlock()
            sandboxDied(owner.pod)
            return
        }
        guard let i = pods.firstIndex(where: { $0.key == owner.pod }), let j = pods[i].containers.firstIndex(where: { $0.name == name }),
              pods[i].containers[j].pid == pid else { lock.unlock(); return }
        let signaled = status & 0x7f != 0
        let code: Int32 = signaled ? 128 + (status & 0x7f) : (status >> 8) & 0xff
        let started = pods[i].containers[j].startedAt
        var reason = code == 0 ? "Completed" : "Error"
        let unknown = unknownExits.remove(pid) != nil
        if signaled && status & 0x7f == SIGKILL, let p = podSpec(owner.pod) {
            let kills = Cgroups.oomKills(cluster: _specName, pod: p, container: name)
            if kills > (oomSeen["\(owner.pod)/\(name)"] ?? 0) { reason = "OOMKilled" }
            oomSeen["\(owner.pod)/\(name)"] = kills
        }
        if unknown { reason = "ContainerStatusUnknown" }
        let t = ContainerStatus.Termination(exitCode: code, signal: signaled ? status & 0x7f : nil, reason: reason,
                                            message: unknown ? "The container ended while no supervisor ran; its exit status is unknown" : nil,
                                            startedAt: started, finishedAt: Date())
        pods[i].containers[j].state = .terminated
        pods[i].containers[j].termination = t
        pods[i].containers[j].pid = 0
        consoles.removeValue(forKey: "\(owner.pod)/\(name)")?.close()
        stateDirty = true
        let wasReady = pods[i].containers[j].ready
        pods[i].containers[j].ready = false
        if wasReady { proxyDirty() }
        pods[i].events.append(PodEvent(time: Date(), type: code == 0 ? "Normal" : "Warning", reason: "Exited",
                                       message: "Container \(name) exited with code \(code)\(signaled ? " (signal \(status & 0x7f))" : "")"))
        lock.unlock()
        afterExit(owner.pod, name, termination: t, ranFor: started.map { Date().timeIntervalSince($0) } ?? 0)
    }

    /// What the restart policy says after a container ended.
    func afterExit(_ key: String, _ name: String, termination t: ContainerStatus.Termination, ranFor: Double) {
        guard let p = podSpec(key) else { return }
        // A pod being deleted: what ends stays ended.
        if isTerminating(key) {
            markStateDirty()
            return
        }
        // An ephemeral container is never restarted.
        if p.ephemeralContainers.contains(where: { $0.name == name }) {
            markStateDirty()
            return
        }
        let isInit = p.initContainers.contains { $0.name == name }
        let succeeded = t.exitCode == 0 && t.reason != "StartError"
        if isInit && succeeded {
            startNext(key)
            return
        }
        let restart: Bool
        switch p.restartPolicy {
        case "Never": restart = false
        case "OnFailure": restart = !succeeded
        default: restart = isInit ? !succeeded : true
        }
        guard restart else {
            lock.lock()
            if let i = pods.firstIndex(where: { $0.key == key }) {
                if isInit {
                    pods[i].phase = .failed
                    pods[i].message = "init container \(name) failed"
                } else if pods[i].appContainers.allSatisfy({ $0.state == .terminated }) {
                    // kubelet's getPhase: all ended, none to restart.
                    pods[i].phase = pods[i].appContainers.allSatisfy { $0.termination?.exitCode == 0 } ? .succeeded : .failed
                    stateDirty = true
                }
            }
            lock.unlock()
            return
        }
        let bkey = "\(key)/\(name)"
        lock.lock()
        guard !stopping, let i = pods.firstIndex(where: { $0.key == key }), let j = pods[i].containers.firstIndex(where: { $0.name == name }) else {
            lock.unlock()
            return
        }
        var (delay, next) = Backoff.step(current: backoff[bkey], ranFor: ranFor, initial: spec.restartBackoffSeconds)
        backoff[bkey] = next
        // With back-off off, a container that cannot even start would spin: 10 ms floor.
        if delay == 0 && t.reason == "StartError" { delay = 0.01 }
        pods[i].containers[j].lastTermination = t
        pods[i].containers[j].restartCount += 1
        stateDirty = true
        pods[i].containers[j].state = .waiting
        pods[i].containers[j].reason = delay > 0 ? "CrashLoopBackOff" : "ContainerCreating"
        pods[i].containers[j].message = delay > 0 ? "back-off \(Self.seconds(delay)) restarting failed container \(name)" : nil
        pods[i].containers[j].termination = nil
        let due = Date().addingTimeInterval(delay)
        pods[i].containers[j].nextStart = due
        lock.unlock()
        // Never launch from here directly: a start that fails calls back into afterExit.
        if delay == 0 {
            DispatchQueue.global().async { [self] in launch(key, name, spec: p) }
        } else {
            DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [self] in
                lock.lock()
                let still = pods.first { $0.key == key }?.containers.first { $0.name == name }?.nextStart == due
                lock.unlock()
                if still { launch(key, name, spec: p) }
            }
        }
    }

    static func seconds(_ d: Double) -> String { d >= 1 ? "\(Int(d))s" : "\(Int(d * 1000))ms" }

    /// The pause process died: like kubelet, kill the pod's containers and build a new
    /// sandbox; the pod keeps its IP (the IPAM allocation belongs to the pod).
    func sandboxDied(_ key: String) {
        guard let p = podSpec(key) else { return }
        DispatchQueue.global().async { [self] in
            lock.lock()
            guard !stopping, let i = pods.firstIndex(where: { $0.key == key }) else { lock.unlock(); return }
            let old = pods.remove(at: i)
            let position = i
            for c in old.containers where c.pid > 0 { pidIndex.removeValue(forKey: c.pid); adopted.removeValue(forKey: c.pid) }
            lock.unlock()
            for c in old.containers where c.pid > 0 && Sandbox.isAlive(c.pid, startTime: c.startTime) { kill(c.pid, SIGKILL) }
            try? NetNamespace.remove(old.netns)
            // The old namespace is freed asynchronously; its veth would hold the host name.
            if let node = nodes.first(where: { $0.spec.name == old.node }), !old.hostVeth.isEmpty {
                try? node.netns.netlink.linkDel(name: old.hostVeth)
            }
            var previous = old
            previous.events.append(PodEvent(time: Date(), type: "Normal", reason: "SandboxChanged",
                                            message: "Pod sandbox (pid \(old.pid)) died, it will be killed and re-created."))
            do {
                try addPod(p, address: old.ip, previous: previous)
                // Back in its place: lists keep their order.
                lock.lock()
                if let j = pods.lastIndex(where: { $0.key == key }), j != position, position < pods.count {
                    pods.insert(pods.remove(at: j), at: position)
                }
                lock.unlock()
            } catch {
                lock.lock()
                var failed = old
                failed.phase = .failed
                failed.message = "could not re-create the sandbox: \(error)"
                pods.append(failed)
                lock.unlock()
            }
            try? state().save()
        }
    }
}
