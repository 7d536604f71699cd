namespace ERCache.Replay.Traces;

/// <summary>One request of a trace: at <see cref="TimestampMs"/> (from the trace start), model number
/// <see cref="Model"/> (an index into <see cref="Trace.Models"/>) asks for <see cref="User"/>; <see cref="Fail"/>
/// says the model's inference fails for this request.</summary>
public readonly record struct TraceRequest(long TimestampMs, long User, int Model, bool Fail);

/// <summary>A whole trace in memory, in serving order (non-decreasing timestamps; ties in file order).</summary>
public sealed class Trace(IReadOnlyList<string> models, TraceRequest[] requests)
{
    /// <summary>Model names; an empty name means "the one configured model" (a trace without a model column).</summary>
    public IReadOnlyList<string> Models { get; } = models;

    private IReadOnlyList<IReadOnlySet<long>>? _users;

    public TraceRequest[] Requests { get; } = requests;

    public long DurationMs => Requests.Length == 0 ? 0 : Requests[^1].TimestampMs - Requests[0].TimestampMs;

    /// <summary>Distinct users per model (sizes "unbounded" tiers).</summary>
    public int[] DistinctUsersPerModel() => DistinctUsers().Select(s => s.Count).ToArray();

    /// <summary>The users of each model, gathered once: the command, every replay of a sweep and the warm-up ask.</summary>
    public IReadOnlyList<IReadOnlySet<long>> DistinctUsers() => _users ??= GatherUsers();

    private HashSet<long>[] GatherUsers()
    {
        var sets = Models.Select(_ => new HashSet<long>()).ToArray();
        foreach (var r in Requests)
        {
            sets[r.Model].Add(r.User);
        }

        return sets;
    }
}

/// <summary>A trace file that does not follow its format; the message names the line and the reason.</summary>
internal sealed class TraceFormatException(string path, long line, string reason)
    : Exception($"{path}:{line}: {reason}")
{
    public long Line { get; } = line;

    public string Reason { get; } = reason;
}
