using System.Buffers.Binary;
using System.IO.Compression;

namespace ERCache.Replay.Traces;

/// <summary>
/// Reads a key trace of big-endian 64-bit integers, optionally gzip-compressed (detected by its magic bytes), as
/// published with the Caffeine simulator (the Scarab Research recommendation trace): one request per key, at
/// <c>rate</c> requests per second, for one model, never failing.
/// </summary>
internal static class ScarabTrace
{
    public static Trace Read(string path, double ratePerSecond)
    {
        if (!(ratePerSecond > 0) || double.IsInfinity(ratePerSecond))
        {
            throw new ArgumentOutOfRangeException(nameof(ratePerSecond), ratePerSecond, "--rate must be a positive number of requests per second.");
        }

        using var file = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[2];
        int read = file.Read(magic);
        file.Position = 0;
        using Stream input = read == 2 && magic[0] == 0x1f && magic[1] == 0x8b ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var buffered = new BufferedStream(input, 1 << 16);

        var requests = new List<TraceRequest>();
        Span<byte> key = stackalloc byte[8];
        long index = 0;
        while (true)
        {
            int got = buffered.ReadAtLeast(key, 8, throwOnEndOfStream: false);
            if (got == 0)
            {
                break;
            }

            if (got < 8)
            {
                throw new TraceFormatException(path, index + 1, $"the file ends inside key {index + 1} ({got} of 8 bytes)");
            }

            long ts = (long)(index * 1000.0 / ratePerSecond);
            requests.Add(new TraceRequest(ts, BinaryPrimitives.ReadInt64BigEndian(key), 0, false));
            index++;
        }

        return new Trace([string.Empty], [.. requests]);
    }
}
