namespace ERCache.Replay.Replay;

/// <summary>
/// What a host's user tower costs in the replay's virtual time: a call of <c>n</c> users takes
/// <see cref="PerCall"/> + <c>n</c> × <see cref="PerUser"/>. The library runs at most the model's
/// <c>Inference:MaxConcurrency</c> calls at once, so a host's throughput with full batches of <c>B</c> users is
/// <c>MaxConcurrency</c> × <c>B</c> / (<see cref="PerCall"/> + <c>B</c> × <see cref="PerUser"/>).
/// </summary>
internal sealed record TowerCost(TimeSpan PerCall, TimeSpan PerUser)
{
    /// <summary>The fixed part of a call when only a throughput is given.</summary>
    public static readonly TimeSpan DefaultPerCall = TimeSpan.FromMilliseconds(2);

    /// <summary>How long a call of <paramref name="users"/> users takes.</summary>
    public TimeSpan Of(int users) => PerCall + (PerUser * users);

    /// <summary>Users per second one host serves with <paramref name="concurrency"/> calls of <paramref name="batch"/> users at once.</summary>
    public double Throughput(int concurrency, int batch) => concurrency * batch / Of(batch).TotalSeconds;

    /// <summary>The per-user cost that gives <paramref name="usersPerSecond"/> with full batches, the fixed part kept.</summary>
    /// <exception cref="ArgumentException">The fixed part alone is slower than that.</exception>
    public static TowerCost ForThroughput(double usersPerSecond, int concurrency, int batch, TimeSpan perCall, string model)
    {
        double perUserSeconds = (concurrency / usersPerSecond) - (perCall.TotalSeconds / batch);
        if (!(perUserSeconds > 0))
        {
            throw new ArgumentException(FormattableString.Invariant(
                $"Model '{model}': a throughput of {usersPerSecond:F1} users/s per host is not reachable with a fixed cost of {perCall.TotalMilliseconds} ms per call, MaxConcurrency {concurrency} and MaxBatchSize {batch}: lower the call cost (--call-cost)."));
        }

        return new TowerCost(perCall, TimeSpan.FromTicks(Math.Max(1, (long)Math.Round(perUserSeconds * TimeSpan.TicksPerSecond))));
    }

    public override string ToString() => FormattableString.Invariant($"{PerCall.TotalMilliseconds:0.###} ms per call + {PerUser.TotalMilliseconds:0.###} ms per user");
}
