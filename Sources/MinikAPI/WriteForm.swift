// An object as a client writes it back, turned into input for minik's spec loader: the
// status and the server's metadata go, and so do the defaults the server itself fills
// in when it shows an object (ObjectsView: imagePullPolicy, schedulerName, the default
// tolerations...), so that a `kubectl apply` or `edit` of an object read from the
// server neither warns about fields the user never wrote nor looks like a change.
// What remains is validated by the same rules, with the same messages, as `minik up`.

public enum WriteForm {
    public static func input(_ object: JSON, resource: String) -> JSON {
        var o = object
        o["status"] = nil
        var meta: JSON = [:]
        for k in ["name", "namespace", "labels", "annotations"] {
            if let v = object["metadata"]?[k], v != .null { meta[k] = v }
        }
        if resource == "namespaces" { meta["labels"]?["kubernetes.io/metadata.name"] = nil }
        // Annotations the server writes itself.
        if let a = meta["annotations"]?.object {
            meta["annotations"] = .object(a.filter { !$0.key.hasPrefix("deployment.kubernetes.io/") && $0.key != "minik.dev/netns" })
        }
        if meta["labels"]?.object?.isEmpty == true { meta["labels"] = nil }
        if meta["annotations"]?.object?.isEmpty == true { meta["annotations"] = nil }
        o["metadata"] = meta
        switch resource {
        case "pods":
            if let spec = o["spec"] { o["spec"] = podSpec(spec) }
        case "deployments":
            var spec = o["spec"] ?? [:]
            if spec["strategy"] == ["type": "RollingUpdate", "rollingUpdate": ["maxSurge": "25%", "maxUnavailable": "25%"]] { spec["strategy"] = nil }
            if spec["revisionHistoryLimit"] == 10 { spec["revisionHistoryLimit"] = nil }
            if spec["progressDeadlineSeconds"] == 600 { spec["progressDeadlineSeconds"] = nil }
            if var t = spec["template"] {
                t["metadata"]?["creationTimestamp"] = nil
                if let s = t["spec"] { t["spec"] = podSpec(s) }
                spec["template"] = t
            }
            o["spec"] = spec
        case "services":
            var spec = o["spec"] ?? [:]
            if spec["ipFamilies"] == ["IPv4"] { spec["ipFamilies"] = nil }
            if spec["ipFamilyPolicy"] == "SingleStack" { spec["ipFamilyPolicy"] = nil }
            if spec["internalTrafficPolicy"] == "Cluster" { spec["internalTrafficPolicy"] = nil }
            if spec["externalTrafficPolicy"] == "Cluster" { spec["externalTrafficPolicy"] = nil }
            if spec["sessionAffinity"] == "None" { spec["sessionAffinity"] = nil }
            if let ip = spec["clusterIP"], spec["clusterIPs"] == .array([ip]) { spec["clusterIPs"] = nil }
            o["spec"] = spec
        case "namespaces":
            o["spec"] = nil
        default:
            break
        }
        return o
    }

    static let defaultTolerations: [JSON] = [
        ["key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300],
        ["key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300],
    ]

    static func podSpec(_ s: JSON) -> JSON {
        var spec = s
        let defaults: [String: JSON] = ["schedulerName": "default-scheduler", "terminationGracePeriodSeconds": 30, "securityContext": [:],
                                        "serviceAccountName": "default", "serviceAccount": "default", "enableServiceLinks": true,
                                        "priority": 0, "preemptionPolicy": "PreemptLowerPriority", "dnsPolicy": "ClusterFirst",
                                        "restartPolicy": "Always"]
        for (k, v) in defaults where spec[k] == v { spec[k] = nil }
        if let t = spec["tolerations"]?.array {
            let kept = t.filter { !defaultTolerations.contains($0) }
            spec["tolerations"] = kept.isEmpty ? nil : .array(kept)
        }
        for field in ["containers", "initContainers"] {
            guard let cs = spec[field]?.array else { continue }
            spec[field] = .array(cs.map(container))
        }
        return spec
    }

    static func container(_ c: JSON) -> JSON {
        var o = c
        if o["imagePullPolicy"] == "IfNotPresent" { o["imagePullPolicy"] = nil }
        if o["terminationMessagePath"] == "/dev/termination-log" { o["terminationMessagePath"] = nil }
        if o["terminationMessagePolicy"] == "File" { o["terminationMessagePolicy"] = nil }
        if o["resources"] == [:] { o["resources"] = nil }
        if let r = o["resources"], r["requests"] != nil, r["requests"] == r["limits"] { o["resources"]?["requests"] = nil }
        for probe in ["readinessProbe", "livenessProbe"] {
            guard var p = o[probe] else { continue }
            for (k, v) in ["initialDelaySeconds": JSON.int(0), "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3] where p[k] == v {
                p[k] = nil
            }
            if p["httpGet"]?["scheme"] == "HTTP" { p["httpGet"]?["scheme"] = nil }
            o[probe] = p
        }
        return o
    }
}
