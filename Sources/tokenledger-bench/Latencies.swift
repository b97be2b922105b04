import Histogram

/// A latency distribution in nanoseconds (HdrHistogram, 3 significant digits, 1 µs to 100 s).
struct Latencies: Sendable {
    private(set) var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 100_000_000_000,
                                                   numberOfSignificantValueDigits: .three)
    private(set) var overflows = 0

    mutating func record(ns: UInt64) {
        if !histogram.record(max(ns, 1_000)) { overflows += 1 }
    }

    mutating func add(_ other: Latencies) {
        histogram.add(other.histogram)
        overflows += other.overflows
    }

    var count: Int { Int(histogram.totalCount) }

    /// The value at `percentile` (0-100), in milliseconds.
    func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1e6 }

    var maxMs: Double { Double(histogram.max) / 1e6 }
    var meanMs: Double { histogram.mean / 1e6 }

    /// Adds p50, p99, p99.9 and max to `report`, p99 and max held to `p99Target` and `maxTarget`
    /// (ms) when given.
    func report(_ report: Report, _ scenario: String, _ name: String, p99Target: Double? = nil, p50Target: Double? = nil,
                maxTarget: Double? = nil, note: String) {
        report.add(scenario, "\(name) p50", ms(50), .ms, target: p50Target.map { .atMost($0) }, note: note)
        report.add(scenario, "\(name) p99", ms(99), .ms, target: p99Target.map { .atMost($0) }, note: note)
        report.add(scenario, "\(name) p99.9", ms(99.9), .ms, note: note)
        report.add(scenario, "\(name) max", maxMs, .ms, target: maxTarget.map { .atMost($0) }, note: "\(count) samples")
    }
}
