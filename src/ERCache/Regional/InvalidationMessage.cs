using System.Buffers.Binary;
using System.Text;

namespace ERCache.Regional;

/// <summary>What one host asks every other host to apply to its local tiers.</summary>
internal enum InvalidationKind : byte
{
    /// <summary>Every field of the user was removed.</summary>
    RemoveUser = 1,

    /// <summary>One field (model version) of the user was removed.</summary>
    RemoveField = 2,

    /// <summary>A vector was pushed for the user and written to the store: drop the local copy.</summary>
    Push = 3,

    /// <summary>A model version was cleared: ignore its regional values written until the stamp.</summary>
    Clear = 4,

    /// <summary>A host's message to itself after its subscription came back: hearing it proves the channel delivers
    /// again (the user field carries a nonce). Other hosts ignore it.</summary>
    Probe = 5,
}

/// <summary>
/// One announcement on the invalidation channel: <c>[layout 1][kind][host: 16 bytes][user: int64][stamp: int64 Unix
/// ms][field: UTF-8]</c>. A message that does not decode exactly is ignored (and counted).
/// </summary>
internal readonly record struct InvalidationMessage(InvalidationKind Kind, Guid Host, long UserId, long StampUnixMs, string? Field)
{
    private const byte Layout = 1;
    private const int FixedBytes = 2 + 16 + 8 + 8;

    public byte[] Encode()
    {
        int fieldBytes = Field is null ? 0 : Encoding.UTF8.GetByteCount(Field);
        var bytes = new byte[FixedBytes + fieldBytes];
        bytes[0] = Layout;
        bytes[1] = (byte)Kind;
        Host.TryWriteBytes(bytes.AsSpan(2, 16));
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(18), UserId);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(26), StampUnixMs);
        if (Field is not null)
        {
            Encoding.UTF8.GetBytes(Field, bytes.AsSpan(FixedBytes));
        }

        return bytes;
    }

    public static bool TryDecode(ReadOnlySpan<byte> bytes, out InvalidationMessage message)
    {
        message = default;
        if (bytes.Length < FixedBytes || bytes[0] != Layout || bytes[1] is < (byte)InvalidationKind.RemoveUser or > (byte)InvalidationKind.Probe)
        {
            return false;
        }

        var kind = (InvalidationKind)bytes[1];
        string? field = bytes.Length > FixedBytes ? Encoding.UTF8.GetString(bytes[FixedBytes..]) : null;
        if ((kind is InvalidationKind.RemoveUser or InvalidationKind.Probe) != (field is null))
        {
            return false; // only a whole-user removal and a probe name no field
        }

        message = new InvalidationMessage(
            kind, new Guid(bytes.Slice(2, 16)), BinaryPrimitives.ReadInt64LittleEndian(bytes[18..]), BinaryPrimitives.ReadInt64LittleEndian(bytes[26..]), field);
        return true;
    }
}
