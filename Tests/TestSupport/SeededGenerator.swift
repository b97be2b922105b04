import Foundation

/// A seeded SplitMix64, so that a fuzz failure can be replayed: the seed comes from the
/// `FUZZ_SEED` environment variable when it is set, else from the system generator, and is
/// printed either way.
public struct SeededGenerator: RandomNumberGenerator {
    public let seed: UInt64
    private var state: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    public static func fromEnvironment(test: String) -> SeededGenerator {
        let seed = ProcessInfo.processInfo.environment["FUZZ_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: .min ... .max)
        print("\(test): FUZZ_SEED=\(seed) (set it to replay this run)")
        return SeededGenerator(seed: seed)
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
