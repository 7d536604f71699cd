using System.Globalization;

namespace ERCache.Replay.Traces;

/// <summary>
/// Reads and writes the CSV trace format: a header line, then <c>ts,user[,model][,fail]</c> — <c>ts</c> integer
/// milliseconds from the trace start (non-decreasing), <c>user</c> a signed 64-bit id, <c>model</c> a model name,
/// <c>fail</c> 0 or 1 (1: inference fails for this request). The header names the columns present, in that order.
/// </summary>
internal static class CsvTrace
{
    public static Trace Read(string path)
    {
        using var reader = new StreamReader(path);
        return Read(reader, path);
    }

    public static Trace Read(TextReader reader, string name)
    {
        string? header = reader.ReadLine();
        if (header is null)
        {
            throw new TraceFormatException(name, 1, "the file is empty; expected a header line 'ts,user[,model][,fail]'");
        }

        var columns = header.Trim().Split(',').Select(c => c.Trim().ToLowerInvariant()).ToArray();
        bool hasModel = columns.Contains("model"), hasFail = columns.Contains("fail");
        string[] expected = ["ts", "user", .. hasModel ? new[] { "model" } : [], .. hasFail ? new[] { "fail" } : []];
        if (!columns.SequenceEqual(expected))
        {
            throw new TraceFormatException(name, 1, $"the header must be 'ts,user[,model][,fail]' (got '{header}')");
        }

        var models = new List<string>();
        var modelIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        if (!hasModel)
        {
            models.Add(string.Empty);
        }

        var requests = new List<TraceRequest>();
        long previous = long.MinValue, lineNumber = 1;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNumber++;
            if (line.Length == 0)
            {
                throw new TraceFormatException(name, lineNumber, "empty line");
            }

            var fields = line.Split(',');
            if (fields.Length != expected.Length)
            {
                throw new TraceFormatException(name, lineNumber, $"expected {expected.Length} fields ({string.Join(',', expected)}), got {fields.Length}");
            }

            if (!long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out long ts))
            {
                throw new TraceFormatException(name, lineNumber, $"ts '{fields[0]}' is not a non-negative integer number of milliseconds");
            }

            if (ts < previous)
            {
                throw new TraceFormatException(name, lineNumber, $"ts {ts} is earlier than the previous row's {previous}; timestamps must not decrease");
            }

            if (!long.TryParse(fields[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long user))
            {
                throw new TraceFormatException(name, lineNumber, $"user '{fields[1]}' is not a signed 64-bit integer");
            }

            int model = 0;
            if (hasModel)
            {
                string m = fields[2].Trim();
                if (m.Length == 0)
                {
                    throw new TraceFormatException(name, lineNumber, "model is empty");
                }

                if (!modelIndex.TryGetValue(m, out model))
                {
                    model = models.Count;
                    modelIndex[m] = model;
                    models.Add(m);
                }
            }

            bool fail = false;
            if (hasFail)
            {
                string f = fields[^1].Trim();
                fail = f switch
                {
                    "0" => false,
                    "1" => true,
                    _ => throw new TraceFormatException(name, lineNumber, $"fail '{f}' must be 0 or 1"),
                };
            }

            previous = ts;
            requests.Add(new TraceRequest(ts, user, model, fail));
        }

        return new Trace(models, [.. requests]);
    }

    public static void Write(Trace trace, string path)
    {
        using var writer = new StreamWriter(path);
        bool hasModel = trace.Models.Count > 1 || trace.Models[0].Length > 0;
        writer.WriteLine(hasModel ? "ts,user,model,fail" : "ts,user,fail");
        foreach (var r in trace.Requests)
        {
            writer.Write(r.TimestampMs.ToString(CultureInfo.InvariantCulture));
            writer.Write(',');
            writer.Write(r.User.ToString(CultureInfo.InvariantCulture));
            if (hasModel)
            {
                writer.Write(',');
                writer.Write(trace.Models[r.Model]);
            }

            writer.Write(r.Fail ? ",1\n" : ",0\n");
        }
    }
}
