// The object store: every API object by resource/namespace/name, stamped with a
// resourceVersion from one cluster-wide counter (etcd's revision) and a uid; the
// changes of a recent window kept in order, so a watch can start from any
// resourceVersion inside it and is answered 410 Gone before it (as the apiserver's watch
// cache answers "too old resource version").
//
// In this step the runtime remains the source of truth: `sync` takes the objects the
// runtime describes now (ObjectsView) for one resource and records only what changed,
// as a MODIFIED when the content differs, DELETED and ADDED when an object of the same
// name was re-created (another creationTimestamp). generation counts spec changes.
import Foundation

public struct ObjectKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var resource: String
    public var namespace: String
    public var name: String

    public init(_ resource: String, _ namespace: String, _ name: String) {
        self.resource = resource
        self.namespace = namespace
        self.name = name
    }

    public static func < (a: ObjectKey, b: ObjectKey) -> Bool {
        (a.resource, a.namespace, a.name) < (b.resource, b.namespace, b.name)
    }

    public var description: String { namespace.isEmpty ? "\(resource)/\(name)" : "\(resource)/\(namespace)/\(name)" }
}

public struct WatchEvent: Sendable {
    public enum Kind: String, Sendable { case added = "ADDED", modified = "MODIFIED", deleted = "DELETED", bookmark = "BOOKMARK", error = "ERROR" }
    public var type: Kind
    public var key: ObjectKey
    /// The object as it is after the change (for DELETED: as it was, with the new revision).
    public var object: JSON
    public var revision: Int64

    public init(type: Kind, key: ObjectKey, object: JSON, revision: Int64) {
        self.type = type
        self.key = key
        self.object = object
        self.revision = revision
    }
}

/// Which objects a list or watch wants.
public struct ObjectFilter: Sendable {
    public var resource: String
    /// nil: every namespace.
    public var namespace: String?
    public var labels: LabelSelector
    public var fields: FieldSelector

    public init(resource: String, namespace: String? = nil, labels: LabelSelector = .everything, fields: FieldSelector = .everything) {
        self.resource = resource
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
    }

    public func matches(_ key: ObjectKey, _ object: JSON) -> Bool {
        guard key.resource == resource, namespace == nil || namespace == key.namespace else { return false }
        return labels.matches(object["metadata"]?["labels"]?.stringMap ?? [:]) && fields.matches(object)
    }
}

public struct StoreError: Error, Sendable {
    /// The resourceVersion asked for is older than the window.
    public var gone: Bool
    public var message: String
}

public final class ObjectStore: @unchecked Sendable {
    struct Stored {
        var object: JSON
        var content: JSON
        var spec: JSON?
        var generation: Int64
        var revision: Int64
    }

    private let lock = NSLock()
    private var objects: [ObjectKey: Stored] = [:]
    private(set) public var revision: Int64 = 1
    /// The recent changes, oldest first; at most `window` of them.
    private var changes: [WatchEvent] = []
    private var changesStart = 0
    public let window: Int
    private var watchers: [Int: (filter: ObjectFilter, sink: @Sendable ([WatchEvent]) -> Void)] = [:]
    private var nextWatcher = 0

    /// `after`: the revision a previous store of this cluster reached (a supervisor that
    /// adopts the cluster goes on from there, so resourceVersions never go back).
    public init(window: Int = 10_000, after: Int64 = 0) {
        self.window = window
        revision = max(1, after)
    }

    /// The current revision (for a list's resourceVersion).
    public var currentRevision: Int64 {
        lock.lock(); defer { lock.unlock() }
        return revision
    }

    /// Replaces every object of `resource` with `current`; returns the changes recorded.
    @discardableResult
    public func sync(resource: String, _ current: [ObjectKey: JSON]) -> [WatchEvent] {
        lock.lock()
        var events: [WatchEvent] = []
        func record(_ type: WatchEvent.Kind, _ key: ObjectKey, _ stored: inout Stored) {
            revision += 1
            stored.revision = revision
            stored.object = ObjectStore.stamp(stored.content, revision: revision, generation: stored.spec == nil ? nil : stored.generation)
            events.append(WatchEvent(type: type, key: key, object: stored.object, revision: revision))
        }
        for key in objects.keys.filter({ $0.resource == resource && current[$0] == nil }).sorted() {
            var old = objects.removeValue(forKey: key)!
            record(.deleted, key, &old)
        }
        for key in current.keys.sorted() {
            let content = current[key]!
            let spec = content["spec"]
            if var old = objects[key] {
                if old.content == content { continue }
                let created = { (o: JSON) in o["metadata"]?["creationTimestamp"] }
                if created(old.content) != created(content) || old.content["metadata"]?["uid"] != content["metadata"]?["uid"] {
                    record(.deleted, key, &old)
                    var fresh = Stored(object: content, content: content, spec: spec, generation: 1, revision: 0)
                    record(.added, key, &fresh)
                    objects[key] = fresh
                    continue
                }
                if old.spec != nil && old.spec != spec { old.generation += 1 }
                old.content = content
                old.spec = spec
                record(.modified, key, &old)
                objects[key] = old
            } else {
                var fresh = Stored(object: content, content: content, spec: spec, generation: 1, revision: 0)
                record(.added, key, &fresh)
                objects[key] = fresh
            }
        }
        changes.append(contentsOf: events)
        if changes.count - changesStart > window {
            changesStart = changes.count - window
            if changesStart > window { changes.removeFirst(changesStart); changesStart = 0 }
        }
        let sinks = watchers.values.map { w in (w.sink, events.filter { w.filter.matches($0.key, $0.object) }) }
        lock.unlock()
        for (sink, batch) in sinks where !batch.isEmpty { sink(batch) }
        return events
    }

    /// metadata.resourceVersion (and generation, for objects with a spec) set.
    static func stamp(_ content: JSON, revision: Int64, generation: Int64?) -> JSON {
        var o = content
        var meta = o["metadata"] ?? [:]
        meta["resourceVersion"] = .string(String(revision))
        if let generation, o["kind"]?.string != "Pod", o["kind"]?.string != "Service", o["kind"]?.string != "Node" {
            meta["generation"] = .int(generation)
        }
        o["metadata"] = meta
        // A Deployment or ReplicaSet reports the generation it has seen: the runtime acts
        // on a change before the object is read back.
        if generation != nil, o["status"]?["observedGeneration"] != nil {
            o["status"]?["observedGeneration"] = .int(generation!)
        }
        return o
    }

    public func get(_ key: ObjectKey) -> JSON? {
        lock.lock(); defer { lock.unlock() }
        return objects[key]?.object
    }

    /// The matching objects sorted by namespace and name, and the revision they are at.
    public func list(_ filter: ObjectFilter) -> (items: [JSON], revision: Int64) {
        lock.lock()
        let keys = objects.keys.filter { $0.resource == filter.resource && (filter.namespace == nil || $0.namespace == filter.namespace) }.sorted()
        let found = keys.map { objects[$0]!.object }
        let rev = revision
        lock.unlock()
        let items = found.enumerated().filter { filter.matches(keys[$0.offset], $0.element) }.map(\.element)
        return (items, rev)
    }

    /// Starts a watch: the changes after `from` that match (replayed), then every later
    /// batch through `sink` until `cancel`. `from` nil or 0: the current objects as
    /// ADDED events first ("send initial events"), as the apiserver does for a watch
    /// without a resourceVersion.
    public func watch(_ filter: ObjectFilter, from: Int64?, sink: @escaping @Sendable ([WatchEvent]) -> Void) throws(StoreError) -> (id: Int, replay: [WatchEvent]) {
        lock.lock()
        defer { lock.unlock() }
        var replay: [WatchEvent] = []
        if let from, from > 0 {
            let oldest = changesStart < changes.count ? changes[changesStart].revision : revision + 1
            if from < oldest - 1 && from < revision {
                throw StoreError(gone: true, message: "too old resource version: \(from) (\(oldest - 1))")
            }
            guard from <= revision else {
                throw StoreError(gone: false, message: "resource version \(from) is newer than the store's \(revision)")
            }
            replay = changes[changesStart...].filter { $0.revision > from && filter.matches($0.key, $0.object) }
        } else {
            for key in objects.keys.sorted() where filter.matches(key, objects[key]!.object) {
                replay.append(WatchEvent(type: .added, key: key, object: objects[key]!.object, revision: objects[key]!.revision))
            }
        }
        nextWatcher += 1
        watchers[nextWatcher] = (filter, sink)
        return (nextWatcher, replay)
    }

    public func cancel(watch id: Int) {
        lock.lock()
        watchers.removeValue(forKey: id)
        lock.unlock()
    }

    public var watcherCount: Int {
        lock.lock(); defer { lock.unlock() }
        return watchers.count
    }
}
