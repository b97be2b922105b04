import Foundation

/// The fields of a job as they came, each read on its own: one mistyped field must not hide the
/// `id` and `replyTo` that the failure reply needs.
struct RawJob: Decodable {
    /// A field's value, or a note that it was present with the wrong JSON type.
    struct Field<T> {
        var value: T?
        var wrongType = false
        var isPresent: Bool { value != nil || wrongType }
    }

    /// An integer amount, told apart from a fraction and from an integer too large for 64 bits
    /// (a refusal, `invalid_amount`, rather than a shape error).
    enum Amount {
        case exact(Int64)
        case outOfRange
    }

    var id, type, userId, replyTo: Field<String>
    var operation, operationType, refundOf, tier, paymentId, startDate, endDate: Field<String>
    var amount: Field<Amount>
    var months, limit, offset: Field<Int>
    var dryRun, continueOnError: Field<Bool>
    var metadata: Field<String>

    enum Key: String, CodingKey {
        case id, type, userId, replyTo, operation, operationType, refundOf, tier, paymentId, startDate, endDate
        case amount, months, limit, offset, dryRun, continueOnError, metadata
    }

    init(from decoder: any Decoder) throws {
        let c: KeyedDecodingContainer<Key>
        do {
            c = try decoder.container(keyedBy: Key.self)
        } catch {
            throw JobError("The job is not a JSON object.")
        }
        func read<T: Decodable>(_ key: Key, as: T.Type = T.self) -> Field<T> {
            guard c.contains(key), (try? c.decodeNil(forKey: key)) == false else { return Field() }
            do { return Field(value: try c.decode(T.self, forKey: key)) } catch { return Field(wrongType: true) }
        }
        id = read(.id); type = read(.type); userId = read(.userId); replyTo = read(.replyTo)
        operation = read(.operation); operationType = read(.operationType); refundOf = read(.refundOf)
        tier = read(.tier); paymentId = read(.paymentId); startDate = read(.startDate); endDate = read(.endDate)
        months = read(.months); limit = read(.limit); offset = read(.offset)
        dryRun = read(.dryRun); continueOnError = read(.continueOnError)

        amount = Field()
        if c.contains(.amount), (try? c.decodeNil(forKey: .amount)) == false {
            if let exact = try? c.decode(Int64.self, forKey: .amount) {
                amount = Field(value: .exact(exact))
            } else if let approx = try? c.decode(Double.self, forKey: .amount), approx == approx.rounded(), approx.isFinite {
                amount = Field(value: .outOfRange)
            } else {
                amount = Field(wrongType: true)
            }
        }

        metadata = Field()
        if c.contains(.metadata), (try? c.decodeNil(forKey: .metadata)) == false {
            if let object = try? c.decode([String: JSONValue].self, forKey: .metadata),
               let data = try? Self.metadataEncoder.encode(object) {
                metadata = Field(value: String(decoding: data, as: UTF8.self))
            } else {
                metadata = Field(wrongType: true)
            }
        }
    }

    private static let metadataEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()
}
