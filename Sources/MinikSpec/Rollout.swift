// The deployment controller and the replica set controller, as pure functions over the
// spec (after kubernetes/pkg/controller/deployment: rolling.go, recreate.go, sync.go,
// and pkg/controller/replicaset).
//
// A Deployment keeps one ReplicaSetRecord per pod template it has run: the template, its
// pod-template-hash, its revision and its size (the ReplicaSet's spec.replicas). Its pods
// are named <deployment>-<hash>-<five random characters> and carry the hash as a label.
// One pass (`ClusterSpec.rolledOut`) does what one sync of both controllers does:
// - the deployment controller finds the ReplicaSet whose template is the Deployment's
//   (or records a new one, the next revision; an old one found again, as after
//   `rollout undo`, becomes the next revision), then either scales it up or the old ones
//   down, within maxSurge and maxUnavailable, counting only ready pods as available
//   (minReadySeconds is 0); Recreate scales the old ones to zero and waits for their pods
//   to be gone first; a finished rollout drops old ReplicaSets past revisionHistoryLimit;
// - the replica set controller makes or deletes pods until each ReplicaSet has its size:
//   it deletes the not-ready first, then the newest, and counts no terminating pod.
// Readiness and termination come in as an observation; the pass decides, it never
// waits. The supervisor runs a pass after every write and whenever pods change, which
// makes it level-triggered: a pass over a settled cluster changes nothing.

import Foundation

/// An IntOrString of a percentage or a count, as maxSurge and maxUnavailable are.
public enum IntOrPercent: Codable, Sendable, Equatable, CustomStringConvertible {
    case count(Int)
    case percent(Int)

    /// intstr.GetScaledValueFromIntOrPercent: the count, or the percent of `total`
    /// rounded up or down.
    /// (At most Int32.max, the API's own bound: a huge value cannot overflow the sums.)
    public func scaled(_ total: Int, roundUp: Bool) -> Int {
        switch self {
        case .count(let n): return min(max(n, 0), Int(Int32.max))
        case .percent(let p):
            let v = Double(p) * Double(total) / 100
            return Int(min(max(roundUp ? v.rounded(.up) : v.rounded(.down), 0), Double(Int32.max)))
        }
    }

    public var description: String {
        switch self {
        case .count(let n): return String(n)
        case .percent(let p): return "\(p)%"
        }
    }

    /// "25%" is a percent; nil for any other text.
    public static func percent(_ text: String) -> IntOrPercent? {
        guard text.hasSuffix("%"), let p = Int(text.dropLast()), p >= 0 else { return nil }
        return .percent(p)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(Int.self) {
            self = .count(n)
        } else if let p = IntOrPercent.percent(try c.decode(String.self)) {
            self = p
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "neither a count nor a percent")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .count(let n): try c.encode(n)
        case .percent: try c.encode(description)
        }
    }
}

/// spec.strategy of a Deployment.
public struct DeploymentStrategy: Codable, Sendable, Equatable {
    /// Recreate: every old pod goes before a new one starts.
    public var recreate = false
    public var maxSurge: IntOrPercent = .percent(25)
    public var maxUnavailable: IntOrPercent = .percent(25)

    public init(recreate: Bool = false, maxSurge: IntOrPercent = .percent(25), maxUnavailable: IntOrPercent = .percent(25)) {
        self.recreate = recreate
        self.maxSurge = maxSurge
        self.maxUnavailable = maxUnavailable
    }
}

/// A ReplicaSet of a Deployment: one template it ran, and how many pods of it it wants.
public struct ReplicaSetRecord: Codable, Sendable, Equatable {
    /// The pod-template-hash: the ReplicaSet is <deployment>-<hash>.
    public var hash: String
    /// deployment.kubernetes.io/revision.
    public var revision: Int
    /// spec.replicas.
    public var replicas: Int
    /// The template, without name, node or source (Rollout.normalized).
    public var template: PodSpec
    public var created: Date
    /// kubernetes.io/change-cause, copied from the Deployment when it was last new.
    public var changeCause: String?

    public init(hash: String, revision: Int, replicas: Int, template: PodSpec, created: Date, changeCause: String? = nil) {
        self.hash = hash
        self.revision = revision
        self.replicas = replicas
        self.template = template
        self.created = created
        self.changeCause = changeCause
    }

    public func name(of deployment: String) -> String { "\(deployment)-\(hash)" }
}

/// What the controllers observed of the pods.
public struct RolloutObservation: Sendable {
    /// Pods (namespace/name) that are ready, so available (minReadySeconds is 0).
    public var ready: Set<String>
    /// Pods being deleted: they count for no ReplicaSet any more.
    public var terminating: Set<String>
    public var now: Date

    public init(ready: Set<String> = [], terminating: Set<String> = [], now: Date = Date()) {
        self.ready = ready
        self.terminating = terminating
        self.now = now
    }
}

/// An event a controller records about an object.
public struct ControllerEvent: Codable, Sendable, Equatable {
    public var kind: String
    public var namespace: String
    public var name: String
    public var type: String
    public var reason: String
    public var message: String
    public var component: String
    public var time: Date
    /// Repeats of it (same object, reason and message), the last one at `last`.
    public var count = 1
    public var last: Date?

    public init(kind: String, namespace: String, name: String, type: String = "Normal", reason: String, message: String,
                component: String, time: Date) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.type = type
        self.reason = reason
        self.message = message
        self.component = component
        self.time = time
    }

    /// Whether `other` is a repeat of it (the event correlator's key, reduced).
    public func sameAs(_ other: ControllerEvent) -> Bool {
        kind == other.kind && namespace == other.namespace && name == other.name && reason == other.reason
            && message == other.message && type == other.type
    }
}

/// What a pass decided: the spec with its ReplicaSets resized and new pods added; the
/// pods to delete (gracefully: they stay in the spec until they are gone); events.
public struct RolloutPass: Sendable {
    public var spec: ClusterSpec
    public var delete: [String]
    public var events: [ControllerEvent]
    /// Whether `spec` differs from the pass's input (a settled cluster: false).
    public var changed: Bool
}

public enum Rollout {
    /// The template as ReplicaSets compare and hash it: without the pod's name, node and
    /// where it was written, and without the pod-template-hash label.
    public static func normalized(_ template: PodSpec) -> PodSpec {
        var t = template
        t.name = ""
        t.nodeName = ""
        t.source = SourceLocation(file: "", line: 0, column: 0, field: "")
        t.labels["pod-template-hash"] = nil
        for i in t.containers.indices { t.containers[i].source = nil }
        for i in t.initContainers.indices { t.initContainers[i].source = nil }
        return t
    }

    /// The pod-template-hash of a normalized template: as the deployment controller
    /// makes it, the FNV-32a of the template (and a collision count), its decimal digits
    /// mapped onto rand.SafeEncodeString's alphabet.
    public static func hash(_ template: PodSpec, collisions: Int = 0) -> String {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        var bytes = Array((try? e.encode(template)) ?? Data())
        if collisions > 0 { bytes += Array(String(collisions).utf8) }
        var h: UInt32 = 2166136261
        for b in bytes { h = (h ^ UInt32(b)) &* 16777619 }
        return String(String(h).utf8.map { alphabet[Int($0) % alphabet.count] })
    }

    static let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")

    /// generateName's five random characters.
    public static func suffix(_ random: inout some RandomNumberGenerator) -> String {
        String((0..<5).map { _ in alphabet[Int(random.next(upperBound: UInt64(alphabet.count)))] })
    }

    /// A pod name made from a ReplicaSet's: the name and a dash cut to 58 characters, as
    /// the apiserver cuts generateName, so the pod's name is always a DNS label.
    public static func podName(replicaSet: String, suffix: String) -> String {
        String("\(replicaSet)-".prefix(58)) + suffix
    }

    /// deploymentutil.ResolveFenceposts: maxSurge rounded up and maxUnavailable down, of
    /// `replicas`; both zero would stall a rollout, so maxUnavailable is then 1.
    public static func fenceposts(_ s: DeploymentStrategy, replicas: Int) -> (surge: Int, unavailable: Int) {
        let surge = s.maxSurge.scaled(replicas, roundUp: true)
        let unavailable = s.maxUnavailable.scaled(replicas, roundUp: false)
        return surge == 0 && unavailable == 0 ? (0, 1) : (surge, unavailable)
    }

    /// One ReplicaSet as the deployment controller sees it: its size and how many of its
    /// pods are available.
    public struct Counts: Sendable, Equatable {
        public var replicas: Int
        public var available: Int
        public init(_ replicas: Int, available: Int) {
            self.replicas = replicas
            self.available = available
        }
    }

    /// One sync of the RollingUpdate strategy: the new sizes of the new ReplicaSet and of
    /// the old ones (oldest first). It scales the new one up as far as maxSurge allows,
    /// and only when that does nothing, scales old ones down: first their unavailable
    /// pods, then as many available ones as keep `replicas - maxUnavailable` available.
    public static func rollingStep(replicas: Int, strategy: DeploymentStrategy, new: Counts, old: [Counts]) -> (new: Int, old: [Int]) {
        var oldSizes = old.map(\.replicas)
        // reconcileNewReplicaSet
        if new.replicas > replicas { return (replicas, oldSizes) }
        if new.replicas < replicas {
            let maxTotal = replicas + strategy.maxSurge.scaled(replicas, roundUp: true)
            let current = new.replicas + oldSizes.reduce(0, +)
            if current < maxTotal {
                let up = min(maxTotal - current, replicas - new.replicas)
                if up > 0 { return (new.replicas + up, oldSizes) }
            }
        }
        // reconcileOldReplicaSets
        let oldCount = oldSizes.reduce(0, +)
        guard oldCount > 0 else { return (new.replicas, oldSizes) }
        let maxUnavailable = replicas == 0 ? 0 : min(fenceposts(strategy, replicas: replicas).unavailable, replicas)
        let minAvailable = replicas - maxUnavailable
        let newUnavailable = max(0, new.replicas - new.available)
        let maxScaledDown = new.replicas + oldCount - minAvailable - newUnavailable
        guard maxScaledDown > 0 else { return (new.replicas, oldSizes) }
        // cleanupUnhealthyReplicas: pods that serve nothing go first.
        var cleaned = 0
        for i in old.indices where cleaned < maxScaledDown && oldSizes[i] > old[i].available {
            let n = min(maxScaledDown - cleaned, oldSizes[i] - old[i].available)
            oldSizes[i] -= n
            cleaned += n
        }
        // scaleDownOldReplicaSetsForRollingUpdate
        let available = new.available + old.reduce(0) { $0 + $1.available }
        if available > minAvailable {
            let total = available - minAvailable
            var done = 0
            for i in old.indices where done < total && oldSizes[i] > 0 {
                let n = min(oldSizes[i], total - done)
                oldSizes[i] -= n
                done += n
            }
        }
        return (new.replicas, oldSizes)
    }

    /// One sync of the Recreate strategy: old ReplicaSets to zero; once no old pod is
    /// left (terminating ones included), the new one to `replicas`.
    public static func recreateStep(replicas: Int, new: Int, old: [Int], oldPodsLeft: Bool) -> (new: Int, old: [Int]) {
        if old.contains(where: { $0 > 0 }) { return (new, old.map { _ in 0 }) }
        if oldPodsLeft { return (new, old) }
        return (replicas, old)
    }

    /// Which of a ReplicaSet's pods go when it has `excess` too many (controller.ActivePods
    /// order, reduced to what minik knows): not ready before ready, then the newest first.
    /// `pods` are in creation order.
    public static func podsToDelete(_ pods: [String], ready: Set<String>, excess: Int) -> [String] {
        guard excess > 0 else { return [] }
        let ranked = pods.enumerated().sorted { a, b in
            let ra = ready.contains(a.element), rb = ready.contains(b.element)
            return ra != rb ? !ra : a.offset > b.offset
        }
        return ranked.prefix(excess).map(\.element)
    }
}

extension Rollout {
    /// The events of the pass that made a new cluster's Deployments (`up`, where the
    /// spec loader ran it): each ReplicaSet scaled up from 0, each pod created.
    public static func creationEvents(_ spec: ClusterSpec, now: Date) -> [ControllerEvent] {
        var out: [ControllerEvent] = []
        for d in spec.deployments {
            for rs in d.replicaSets where rs.replicas > 0 {
                out.append(ControllerEvent(kind: "Deployment", namespace: d.namespace, name: d.name, reason: "ScalingReplicaSet",
                                           message: "Scaled up replica set \(rs.name(of: d.name)) from 0 to \(rs.replicas)",
                                           component: "deployment-controller", time: now))
                for p in spec.pods where p.owner == d.owner && p.namespace == d.namespace && p.labels["pod-template-hash"] == rs.hash {
                    out.append(ControllerEvent(kind: "ReplicaSet", namespace: d.namespace, name: rs.name(of: d.name), reason: "SuccessfulCreate",
                                               message: "Created pod: \(p.name)", component: "replicaset-controller", time: now))
                }
            }
        }
        return out
    }
}

extension ClusterSpec {
    /// One pass of the deployment controller and the replica set controller over every
    /// Deployment (see the file's note). Pods that fit no node are not made; each such
    /// failure is a FailedCreate warning event on its ReplicaSet.
    /// `only`: the Deployments (namespace/name) to act on; nil for all.
    public func rolledOut(_ seen: RolloutObservation, only: Set<String>? = nil, random: inout some RandomNumberGenerator) -> RolloutPass {
        var out = self
        var delete: [String] = []
        var events: [ControllerEvent] = []
        guard !deployments.isEmpty else { return RolloutPass(spec: out, delete: [], events: [], changed: false) }
        var changed = false
        var taken = Set(pods.map(\.key))
        var load = self.load
        var added: [PodSpec] = []
        var byOwner: [String: [PodSpec]] = [:]
        for p in pods where p.owner != nil { byOwner["\(p.namespace)/\(p.owner!)", default: []].append(p) }
        for di in out.deployments.indices where only?.contains(out.deployments[di].key) ?? true {
            var d = out.deployments[di]
            if d.created == nil { d.created = seen.now }
            let owned = byOwner["\(d.namespace)/\(d.owner)"] ?? []
            func event(_ kind: String, _ name: String, _ reason: String, _ message: String, _ component: String, type: String = "Normal") {
                events.append(ControllerEvent(kind: kind, namespace: d.namespace, name: name, type: type, reason: reason,
                                              message: message, component: component, time: seen.now))
            }
            // Pods of a template no record holds (made by an older minik): an old
            // ReplicaSet of their own (revision 0: never the new one), replaced like any other.
            func hashOf(_ p: PodSpec) -> String { p.labels["pod-template-hash"] ?? "" }
            var known = Set(d.replicaSets.map(\.hash))
            for p in owned where !known.contains(hashOf(p)) {
                known.insert(hashOf(p))
                d.replicaSets.insert(ReplicaSetRecord(hash: hashOf(p), revision: 0, replicas: owned.count { hashOf($0) == hashOf(p) },
                                                      template: Rollout.normalized(p), created: .distantPast), at: 0)
            }
            func active(_ hash: String) -> [PodSpec] {
                owned.filter { hashOf($0) == hash && !seen.terminating.contains($0.key) }
            }
            // The new ReplicaSet: the one with the Deployment's template.
            let template = Rollout.normalized(d.template)
            let top = d.replicaSets.map(\.revision).max() ?? 0
            let cause = d.annotations["kubernetes.io/change-cause"]
            let ni: Int
            if let i = d.replicaSets.firstIndex(where: { $0.revision > 0 && $0.template == template }) {
                ni = i
                if d.replicaSets[i].revision < top { d.replicaSets[i].revision = top + 1 }
                if cause != nil { d.replicaSets[i].changeCause = cause }
            } else {
                var collisions = 0
                var hash = Rollout.hash(template)
                while d.replicaSets.contains(where: { $0.hash == hash }) {
                    collisions += 1
                    hash = Rollout.hash(template, collisions: collisions)
                }
                d.replicaSets.append(ReplicaSetRecord(hash: hash, revision: top + 1, replicas: 0, template: template,
                                                      created: seen.now, changeCause: cause))
                ni = d.replicaSets.count - 1
            }
            let oldIdx = d.replicaSets.indices.filter { $0 != ni }
            func counts(_ i: Int) -> Rollout.Counts {
                let mine = active(d.replicaSets[i].hash)
                return Rollout.Counts(d.replicaSets[i].replicas, available: mine.count { seen.ready.contains($0.key) })
            }
            let before = d.replicaSets.map(\.replicas)
            let step: (new: Int, old: [Int])
            if d.strategy.recreate {
                let left = oldIdx.contains { i in owned.contains { hashOf($0) == d.replicaSets[i].hash } }
                step = Rollout.recreateStep(replicas: d.replicas, new: d.replicaSets[ni].replicas,
                                            old: oldIdx.map { d.replicaSets[$0].replicas }, oldPodsLeft: left)
            } else {
                step = Rollout.rollingStep(replicas: d.replicas, strategy: d.strategy, new: counts(ni), old: oldIdx.map(counts))
            }
            d.replicaSets[ni].replicas = step.new
            for (k, i) in oldIdx.enumerated() { d.replicaSets[i].replicas = step.old[k] }
            for i in d.replicaSets.indices where d.replicaSets[i].replicas != before[i] {
                let rs = d.replicaSets[i]
                event("Deployment", d.name, "ScalingReplicaSet",
                      "Scaled \(rs.replicas > before[i] ? "up" : "down") replica set \(rs.name(of: d.name)) from \(before[i]) to \(rs.replicas)",
                      "deployment-controller")
            }
            // The replica set controller: each record's pods to its size.
            for (i, rs) in d.replicaSets.enumerated() {
                let mine = active(rs.hash)
                let rsName = rs.name(of: d.name)
                if mine.count > rs.replicas {
                    for key in Rollout.podsToDelete(mine.map(\.key), ready: seen.ready, excess: mine.count - rs.replicas) {
                        delete.append(key)
                        event("ReplicaSet", rsName, "SuccessfulDelete", "Deleted pod: \(key.split(separator: "/").last ?? "")", "replicaset-controller")
                    }
                }
                guard mine.count < rs.replicas else { continue }
                var spread: [String: Int] = [:]
                for p in mine { spread[p.nodeName, default: 0] += 1 }
                for _ in mine.count..<rs.replicas {
                    var p = i == ni ? d.template : rs.template
                    p.labels["pod-template-hash"] = rs.hash
                    p.owner = d.owner
                    p.namespace = d.namespace
                    repeat { p.name = Rollout.podName(replicaSet: rsName, suffix: Rollout.suffix(&random)) } while taken.contains(p.key)
                    guard let node = out.place(p, load: load, spread: spread), (load[node] ?? 0) < SpecLoader.podsPerNode else {
                        let why = out.place(p, load: load, spread: spread).map { "node \($0) is full (\(SpecLoader.podsPerNode) pods)" }
                            ?? "no node matches nodeSelector \(p.nodeSelector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))"
                        event("ReplicaSet", rsName, "FailedCreate", "Error creating: \(why)", "replicaset-controller", type: "Warning")
                        break
                    }
                    p.nodeName = node
                    load[node, default: 0] += 1
                    spread[node, default: 0] += 1
                    taken.insert(p.key)
                    added.append(p)
                    event("ReplicaSet", rsName, "SuccessfulCreate", "Created pod: \(p.name)", "replicaset-controller")
                }
            }
            // A finished rollout keeps revisionHistoryLimit old ReplicaSets that have
            // nothing left; older ones go (cleanupDeployment).
            let newRS = d.replicaSets[ni]
            let complete = newRS.replicas == d.replicas && active(newRS.hash).count == d.replicas
                && oldIdx.allSatisfy { d.replicaSets[$0].replicas == 0 }
            if complete {
                let idle = d.replicaSets.filter { rs in
                    rs.hash != newRS.hash && rs.replicas == 0 && !owned.contains { hashOf($0) == rs.hash }
                }.sorted { $0.revision < $1.revision }
                let drop = Set(idle.prefix(max(0, idle.count - d.revisionHistoryLimit)).map(\.hash))
                d.replicaSets.removeAll { drop.contains($0.hash) }
            }
            if d != out.deployments[di] { changed = true }
            out.deployments[di] = d
        }
        out.pods += added
        return RolloutPass(spec: out, delete: delete, events: events, changed: changed || !added.isEmpty)
    }
}
