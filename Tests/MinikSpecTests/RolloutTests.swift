import Foundation
import Testing
@testable import MinikSpec

/// Whether a name is one a ReplicaSet of `deployment` gives its pods:
/// <deployment>-<hash>-<five characters>.
func isReplicaName(_ deployment: String) -> (String) -> Bool {
    { name in
        let parts = name.dropFirst(deployment.count + 1).split(separator: "-", omittingEmptySubsequences: false)
        return name.hasPrefix("\(deployment)-") && parts.count == 2 && (6...10).contains(parts[0].count) && parts[1].count == 5
            && name.allSatisfy { "bcdfghjklmnpqrstvwxz0123456789-".contains($0) || deployment.contains($0) }
    }
}

/// A generator that gives the same names every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 11 | state << 53
    }
}

@Suite("Deployments: the rollout decider")
struct RolloutDeciderTests {
    func rolling(surge: IntOrPercent, unavailable: IntOrPercent) -> DeploymentStrategy {
        DeploymentStrategy(maxSurge: surge, maxUnavailable: unavailable)
    }

    @Test func percentsRoundAsIntstrDoes() {
        #expect(IntOrPercent.percent(25).scaled(10, roundUp: true) == 3)
        #expect(IntOrPercent.percent(25).scaled(10, roundUp: false) == 2)
        #expect(IntOrPercent.percent(25).scaled(1, roundUp: true) == 1)
        #expect(IntOrPercent.percent(25).scaled(1, roundUp: false) == 0)
        #expect(IntOrPercent.count(3).scaled(100, roundUp: false) == 3)
        #expect(IntOrPercent.percent("30%") == .percent(30))
        #expect(IntOrPercent.percent("30") == nil && IntOrPercent.percent("-1%") == nil)
        // ResolveFenceposts: with both at zero a rollout could not move; one may be unavailable.
        #expect(Rollout.fenceposts(rolling(surge: .percent(25), unavailable: .percent(25)), replicas: 1) == (1, 0))
        #expect(Rollout.fenceposts(rolling(surge: .percent(10), unavailable: .percent(10)), replicas: 1) == (1, 0))
        #expect(Rollout.fenceposts(rolling(surge: .count(0), unavailable: .percent(10)), replicas: 5) == (0, 1))
    }

    // kubernetes/pkg/controller/deployment/rolling_test.go, TestDeploymentController_reconcileNewReplicaSet.
    @Test(arguments: [
        (10, 0, 10, 0, 0), (10, 2, 10, 0, 2), (10, 2, 5, 0, 7), (10, 2, 10, 2, 2), (10, 2, 2, 11, 10),
    ])
    func theNewReplicaSetGrowsWithinMaxSurge(replicas: Int, surge: Int, old: Int, new: Int, expected: Int) {
        let step = Rollout.rollingStep(replicas: replicas, strategy: rolling(surge: .count(surge), unavailable: .count(0)),
                                       new: .init(new, available: 0), old: [.init(old, available: 0)])
        #expect(step.new == expected)
    }

    // TestDeploymentController_reconcileOldReplicaSets (maxSurge 0).
    @Test(arguments: [
        (10, 0, 10, 0, 10, 0, 9), // both at 0: one may be unavailable (ResolveFenceposts)
        (10, 2, 10, 0, 10, 0, 8),
        (10, 2, 10, 0, 8, 0, 8), // the two unhealthy old pods go first
        (10, 2, 10, 0, 9, 0, 8), // one unhealthy, then one ready
        (10, 2, 8, 2, 8, 0, 8), // the new ones not ready yet: nothing more goes
    ])
    func oldReplicaSetsShrinkWithinMaxUnavailable(replicas: Int, unavailable: Int, old: Int, new: Int, oldReady: Int, newReady: Int, expected: Int) {
        let step = Rollout.rollingStep(replicas: replicas, strategy: rolling(surge: .count(0), unavailable: .count(unavailable)),
                                       new: .init(new, available: newReady), old: [.init(old, available: oldReady)])
        #expect(step.old == [expected])
        #expect(step.new == new)
    }

    @Test func theOldestOldReplicaSetGoesFirst() {
        let step = Rollout.rollingStep(replicas: 4, strategy: rolling(surge: .count(0), unavailable: .count(3)),
                                       new: .init(0, available: 0), old: [.init(2, available: 2), .init(2, available: 2)])
        #expect(step.old == [0, 1])
    }

    @Test func hugeSurgesDoNotOverflow() {
        let strategy = DeploymentStrategy(maxSurge: .count(Int(Int32.max)), maxUnavailable: .percent(1_000_000))
        let step = Rollout.rollingStep(replicas: 60_000, strategy: strategy, new: .init(0, available: 0), old: [.init(60_000, available: 60_000)])
        #expect(step.new == 60_000)
        #expect(IntOrPercent.percent(Int.max / 2).scaled(1_000, roundUp: true) == Int(Int32.max))
        #expect(IntOrPercent.count(Int.max).scaled(1, roundUp: false) == Int(Int32.max))
    }

    @Test func recreateEmptiesTheOldThenWaitsForTheirPods() {
        #expect(Rollout.recreateStep(replicas: 3, new: 0, old: [3], oldPodsLeft: true) == (0, [0]))
        #expect(Rollout.recreateStep(replicas: 3, new: 0, old: [0], oldPodsLeft: true) == (0, [0]))
        #expect(Rollout.recreateStep(replicas: 3, new: 0, old: [0], oldPodsLeft: false) == (3, [0]))
    }

    @Test func theNotReadyAndTheNewestGoFirst() {
        let pods = ["a", "b", "c", "d"]
        #expect(Rollout.podsToDelete(pods, ready: ["a", "b", "c", "d"], excess: 2) == ["d", "c"])
        #expect(Rollout.podsToDelete(pods, ready: ["a", "c", "d"], excess: 2) == ["b", "d"])
        #expect(Rollout.podsToDelete(pods, ready: [], excess: 0) == [])
    }

    @Test func podNamesAreAlwaysLabels() {
        let long = String(repeating: "a", count: 63)
        let name = Rollout.podName(replicaSet: "\(long)-5d66c5f78d", suffix: "xyz12")
        #expect(name.count == 63 && DNS.isLabel(name))
        #expect(Rollout.podName(replicaSet: "web-5d66c5f78d", suffix: "xyz12") == "web-5d66c5f78d-xyz12")
    }

    @Test func theHashIgnoresWhereTheTemplateWasWrittenAndItsName() throws {
        let a = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 2), file: "a.yaml")
        let b = try SpecLoader.parse("\n\n" + clusterHeader + deployment("web", replicas: 2), file: "b.yaml")
        let ta = try #require(a.deployments.first { $0.name == "web" }).template
        let tb = try #require(b.deployments.first { $0.name == "web" }).template
        #expect(ta.source != tb.source)
        #expect(Rollout.hash(Rollout.normalized(ta)) == Rollout.hash(Rollout.normalized(tb)))
        var changed = Rollout.normalized(ta)
        changed.containers[0].image = "agnhost"
        #expect(Rollout.hash(changed) != Rollout.hash(Rollout.normalized(ta)))
        #expect(Rollout.hash(changed, collisions: 1) != Rollout.hash(changed))
    }
}

@Suite("Deployments: passes of the controllers")
struct RolloutPassTests {
    /// Runs passes until nothing changes: pods made become ready (unless `ready` says
    /// otherwise), pods the pass deletes are gone by the next pass. `each` sees every
    /// intermediate spec.
    func settle(_ start: ClusterSpec, rng: inout SeededGenerator, ready: (PodSpec) -> Bool = { _ in true },
                each: (ClusterSpec, RolloutPass) -> Void = { _, _ in }) -> ClusterSpec {
        var spec = start
        for _ in 0..<100 {
            let seen = RolloutObservation(ready: Set(spec.pods.filter(ready).map(\.key)))
            let pass = spec.rolledOut(seen, random: &rng)
            each(spec, pass)
            let next = { var s = pass.spec; s.pods.removeAll { pass.delete.contains($0.key) }; return s }()
            // `changed` says what comparing the specs says.
            #expect(pass.changed == (pass.spec != spec))
            if next == spec { return spec }
            spec = next
        }
        Issue.record("the rollout did not settle in 100 passes")
        return spec
    }

    func web(_ spec: ClusterSpec) -> [PodSpec] { spec.pods.filter { $0.owner == "Deployment/web" } }

    func withImage(_ spec: ClusterSpec, _ image: String) -> ClusterSpec {
        var s = spec
        let i = s.deployments.firstIndex { $0.name == "web" }!
        s.deployments[i].template.containers[0].image = image
        return s
    }

    @Test func upMakesOneReplicaSetAndItsPodsSpreadOverTheNodes() throws {
        let spec = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 4), file: "c.yaml")
        let d = try #require(spec.deployments.first { $0.name == "web" })
        #expect(d.replicaSets.count == 1 && d.replicaSets[0].revision == 1 && d.replicaSets[0].replicas == 4)
        let hash = d.replicaSets[0].hash
        let pods = web(spec)
        #expect(pods.count == 4)
        #expect(pods.allSatisfy { $0.labels == ["app": "web", "pod-template-hash": hash] && $0.name.hasPrefix("web-\(hash)-") })
        #expect(pods.map(\.nodeName) == ["lab-worker", "lab-worker2", "lab-worker", "lab-worker2"])
        #expect(Set(pods.map(\.name)).count == 4)
        // Settled: another pass changes nothing.
        var rng = SeededGenerator(state: 1)
        let pass = spec.rolledOut(RolloutObservation(ready: Set(spec.pods.map(\.key))), random: &rng)
        #expect(pass.spec == spec && !pass.changed && pass.delete.isEmpty && pass.events.isEmpty)
    }

    @Test func aRollingUpdateKeepsWithinMaxSurgeAndMaxUnavailableAtEveryStep() throws {
        var rng = SeededGenerator(state: 7)
        let start = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 10), file: "c.yaml")
        let old = try #require(start.deployments.first { $0.name == "web" }?.replicaSets.first)
        var passes = 0
        var events: [ControllerEvent] = []
        let end = settle(withImage(start, "agnhost"), rng: &rng, each: { spec, pass in
            passes += 1
            events += pass.events
            // 25% of 10: at most 13 pods, at least 8 ready (every pod made is ready next pass).
            let after = pass.spec.pods.filter { $0.owner == "Deployment/web" && !pass.delete.contains($0.key) }
            #expect(after.count <= 13, "\(after.count) pods")
            #expect(web(spec).count >= 8)
        })
        let d = try #require(end.deployments.first { $0.name == "web" })
        #expect(d.replicaSets.count == 2)
        let new = try #require(d.newReplicaSet)
        #expect(new.revision == 2 && new.replicas == 10 && new.hash != old.hash)
        #expect(d.replicaSets.first { $0.hash == old.hash }?.replicas == 0)
        #expect(web(end).count == 10 && web(end).allSatisfy { $0.labels["pod-template-hash"] == new.hash && $0.containers[0].image == "agnhost" })
        #expect(passes > 3)
        #expect(events.first?.message == "Scaled up replica set web-\(new.hash) from 0 to 3")
        // Every new pod is ready by the next pass: 13 - 8 = 5 old ones may go at once.
        #expect(events.filter { $0.reason == "ScalingReplicaSet" }.dropFirst().first?.message == "Scaled down replica set web-\(old.hash) from 10 to 5")
        #expect(events.contains { $0.kind == "ReplicaSet" && $0.reason == "SuccessfulDelete" })
    }

    @Test func aRolloutWaitsForReadiness() throws {
        var rng = SeededGenerator(state: 3)
        let start = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 4), file: "c.yaml")
        let oldHash = try #require(start.deployments.first?.replicaSets.first?.hash)
        // New pods never turn ready: the rollout stops with 3 old pods still serving.
        let stuck = settle(withImage(start, "agnhost"), rng: &rng, ready: { $0.labels["pod-template-hash"] == oldHash })
        let pods = web(stuck)
        #expect(pods.count { $0.labels["pod-template-hash"] == oldHash } == 3)
        #expect(pods.count == 5) // 4 + maxSurge 1... and one old gone within maxUnavailable 1
    }

    @Test func undoMakesTheOldReplicaSetTheNewestRevision() throws {
        var rng = SeededGenerator(state: 5)
        let start = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 3), file: "c.yaml")
        let first = try #require(start.deployments.first?.replicaSets.first)
        let rolled = settle(withImage(start, "agnhost"), rng: &rng)
        let back = settle(withImage(rolled, "busybox"), rng: &rng)
        let d = try #require(back.deployments.first { $0.name == "web" })
        #expect(d.newReplicaSet?.hash == first.hash)
        #expect(d.newReplicaSet?.revision == 3)
        #expect(d.replicaSets.count == 2)
        #expect(web(back).allSatisfy { $0.labels["pod-template-hash"] == first.hash })
    }

    @Test func revisionHistoryLimitDropsTheOldestIdleReplicaSets() throws {
        var rng = SeededGenerator(state: 9)
        var spec = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 2, "") .replacingOccurrences(of: "  replicas: 2", with: "  replicas: 2\n  revisionHistoryLimit: 1"), file: "c.yaml")
        #expect(spec.deployments.first { $0.name == "web" }?.revisionHistoryLimit == 1)
        for image in ["agnhost", "netexec", "pause"] { spec = settle(withImage(spec, image), rng: &rng) }
        let d = try #require(spec.deployments.first { $0.name == "web" })
        #expect(d.replicaSets.map(\.revision) == [3, 4])
    }

    @Test func recreateStopsEveryOldPodBeforeANewOne() throws {
        var rng = SeededGenerator(state: 11)
        let text = clusterHeader + deployment("web", replicas: 3).replacingOccurrences(of: "  replicas: 3", with: "  replicas: 3\n  strategy: {type: Recreate}")
        let start = try SpecLoader.parse(text, file: "c.yaml")
        #expect(start.deployments.first { $0.name == "web" }?.strategy.recreate == true)
        let oldHash = try #require(start.deployments.first { $0.name == "web" }?.replicaSets.first?.hash)
        let end = settle(withImage(start, "agnhost"), rng: &rng, each: { spec, pass in
            let before = web(spec)
            let made = web(pass.spec).filter { p in !before.contains { $0.key == p.key } }
            if !made.isEmpty { #expect(!before.contains { $0.labels["pod-template-hash"] == oldHash }) }
        })
        #expect(web(end).count == 3 && !web(end).contains { $0.labels["pod-template-hash"] == oldHash })
    }

    @Test func aTerminatingPodIsReplacedAtOnce() throws {
        var rng = SeededGenerator(state: 13)
        let spec = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 2), file: "c.yaml")
        let gone = try #require(web(spec).first)
        let pass = spec.rolledOut(RolloutObservation(ready: Set(spec.pods.map(\.key)), terminating: [gone.key]), random: &rng)
        let now = web(pass.spec)
        #expect(now.count == 3) // the terminating one stays until it is gone
        #expect(pass.delete.isEmpty)
        #expect(pass.events.map(\.reason) == ["SuccessfulCreate"])
    }

    @Test func scalingDownDeletesTheNotReadyFirst() throws {
        var rng = SeededGenerator(state: 17)
        let spec = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 3), file: "c.yaml")
        let pods = web(spec)
        let scaled = try spec.scaled(deployment: "web", namespace: "default", replicas: 1)
        let pass = scaled.rolledOut(RolloutObservation(ready: [pods[0].key, pods[2].key]), random: &rng)
        #expect(pass.delete == [pods[1].key, pods[2].key])
        #expect(pass.events.first?.message.hasSuffix("from 3 to 1") == true)
    }

    @Test func podsOfAnOlderMinikAreReplacedByARollingUpdate() throws {
        var rng = SeededGenerator(state: 19)
        var spec = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 2), file: "c.yaml")
        // As an older minik wrote them: web-0, web-1, no hash label, no record.
        for i in spec.pods.indices where spec.pods[i].owner == "Deployment/web" {
            spec.pods[i].name = "web-\(i)"
            spec.pods[i].labels["pod-template-hash"] = nil
        }
        let di = spec.deployments.firstIndex { $0.name == "web" }!
        spec.deployments[di].replicaSets = []
        let end = settle(spec, rng: &rng)
        #expect(web(end).count == 2 && web(end).allSatisfy { isReplicaName("web")($0.name) })
    }

    @Test func aPodThatFitsNoNodeIsAFailedCreateEvent() throws {
        var rng = SeededGenerator(state: 23)
        var spec = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 1), file: "c.yaml")
        let di = spec.deployments.firstIndex { $0.name == "web" }!
        spec.deployments[di].template.nodeSelector = ["disk": "ssd"]
        spec.deployments[di].replicas = 2
        let pass = spec.rolledOut(RolloutObservation(ready: Set(spec.pods.map(\.key))), random: &rng)
        #expect(pass.events.contains { $0.reason == "FailedCreate" && $0.type == "Warning" && $0.message.contains("no node matches nodeSelector disk=ssd") })
    }
}

@Suite("Deployments: strategy in YAML")
struct DeploymentStrategySpecTests {
    func withSpec(_ extra: String) -> String {
        clusterHeader + deployment("web", replicas: 4).replacingOccurrences(of: "  replicas: 4", with: "  replicas: 4\n" + extra)
    }

    @Test func rollingUpdateAndRecreateAreRead() throws {
        let a = try SpecLoader.parse(withSpec("  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}"), file: "c.yaml")
        #expect(a.deployments.first { $0.name == "web" }?.strategy == DeploymentStrategy(maxSurge: .count(1), maxUnavailable: .count(0)))
        let b = try SpecLoader.parse(withSpec("  strategy: {rollingUpdate: {maxSurge: 50%}}"), file: "c.yaml")
        #expect(b.deployments.first { $0.name == "web" }?.strategy == DeploymentStrategy(maxSurge: .percent(50), maxUnavailable: .percent(25)))
    }

    @Test func badStrategiesAreRefusedWithTheirPlace() {
        let both = withSpec("  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0%}}")
        expectRejected(both, field: "spec.strategy.rollingUpdate.maxUnavailable", line: line(of: "maxUnavailable", in: both),
                       saying: "maxUnavailable may not be 0 when maxSurge is 0")
        let type = withSpec("  strategy: {type: BlueGreen}")
        expectRejected(type, field: "spec.strategy.type", line: line(of: "BlueGreen", in: type), saying: "strategy type \"BlueGreen\" is not supported")
        let recreate = withSpec("  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}")
        expectRejected(recreate, field: "spec.strategy.rollingUpdate", line: line(of: "Recreate", in: recreate),
                       saying: "rollingUpdate may not be specified when strategy type is 'Recreate'")
        let over = withSpec("  strategy: {rollingUpdate: {maxUnavailable: 150%}}")
        expectRejected(over, field: "spec.strategy.rollingUpdate.maxUnavailable", line: line(of: "150%", in: over),
                       saying: "maxUnavailable must not be greater than 100%")
        let huge = withSpec("  strategy: {rollingUpdate: {maxSurge: 9223372036854775807}}")
        expectRejected(huge, field: "spec.strategy.rollingUpdate.maxSurge", line: line(of: "9223372036854775807", in: huge),
                       saying: "maxSurge 9223372036854775807 is more than 2147483647")
        let text = withSpec("  strategy: {rollingUpdate: {maxSurge: lots}}")
        expectRejected(text, field: "spec.strategy.rollingUpdate.maxSurge", line: line(of: "lots", in: text),
                       saying: "maxSurge \"lots\" must be an integer or a percentage")
        let hash = clusterHeader + deployment("web").replacingOccurrences(of: "metadata: {labels: {app: web}}", with: "metadata: {labels: {app: web, pod-template-hash: x}}")
        expectRejected(hash, field: "spec.template.metadata", line: line(of: "pod-template-hash", in: hash),
                       saying: "template label pod-template-hash is set by the deployment controller")
    }
}
