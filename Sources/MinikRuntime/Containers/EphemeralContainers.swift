// Ephemeral containers (`kubectl debug`), as kubelet runs them: added to a running pod
// without restarting it, in the pod's network, UTS and IPC namespaces, and in the PID
// namespace of their targetContainerName when they name one (so `ps` shows the
// target's processes); started once, never restarted, never removed while the pod lives.
// Their statuses are the pod's ephemeralContainerStatuses; they count neither for the
// pod's readiness nor for its phase.
import Foundation
import MinikSpec

extension ClusterRuntime {
    /// Adds the ephemeral containers of `specs` the pod does not have yet and starts
    /// them. The caller validated them (names unique in the pod, targets existing).
    public func addEphemeralContainers(pod key: String, _ specs: [ContainerSpec]) throws(RuntimeError) {
        lock.lock()
        guard let i = _spec.pods.firstIndex(where: { $0.key == key }), let j = pods.firstIndex(where: { $0.key == key }) else {
            lock.unlock()
            throw .state("pod \(key) not found")
        }
        guard pods[j].phase == .running else {
            lock.unlock()
            throw .state("pod \(key) is not running")
        }
        let have = Set(_spec.pods[i].ephemeralContainers.map(\.name))
        let added = specs.filter { !have.contains($0.name) }
        _spec.pods[i].ephemeralContainers += added
        for c in added {
            var status = Self.waiting(c, isInit: false, reason: "ContainerCreating")
            status.isEphemeral = true
            pods[j].containers.append(status)
        }
        stateDirty = true
        let pod = _spec.pods[i]
        lock.unlock()
        saveState()
        for c in added { launch(key, c.name, spec: pod) }
    }

    /// The pid whose PID namespace an ephemeral container joins: its target's (nil when
    /// it names none, or the target does not run).
    func ephemeralTarget(_ c: ContainerSpec, pod key: String) -> Int32? {
        guard let target = c.targetContainerName else { return nil }
        lock.lock()
        defer { lock.unlock() }
        guard let s = pods.first(where: { $0.key == key })?.containers.first(where: { $0.name == target }), s.isRunning else { return nil }
        return s.pid
    }
}
