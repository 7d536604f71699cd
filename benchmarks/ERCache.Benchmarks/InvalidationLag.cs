using System.Diagnostics;
using System.Diagnostics.Metrics;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Redis;

namespace ERCache.Benchmarks;

/// <summary>
/// How long after <c>RemoveAsync</c> returns on one host the other hosts have applied it: three caches in this process,
/// each with its own connection to one Redis or Garnet (as three hosts would be), real clock. Each round warms a user on
/// all three (host 0 infers, the others copy it from the store), removes it on host 0, waits for hosts 1 and 2 to apply
/// the message, then asks them for the user: an answer older than the removal would be a wrong one.
/// </summary>
internal static class InvalidationLag
{
    public static async Task RunAsync(string connection, int removals)
    {
        var hosts = Enumerable.Range(0, 3).Select(_ => Host(connection)).ToArray();
        foreach (var host in hosts)
        {
            await host.Cache.WhenReadyAsync();
        }

        long appliedAt = 0;
        int applied = 0;
        TaskCompletionSource? both = null;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name == ERCacheDiagnostics.InvalidationMessages && hosts.Skip(1).Any(h => ReferenceEquals(h.Cache.Meter, instrument.Meter)))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag is { Key: ERCacheDiagnostics.DirectionTag, Value: "applied" })
                {
                    Volatile.Write(ref appliedAt, Stopwatch.GetTimestamp());
                    if (Interlocked.Increment(ref applied) == 2)
                    {
                        both?.TrySetResult();
                    }
                }
            }
        });
        listener.Start();

        var lags = new List<double>(removals);
        int wrong = 0, lost = 0;
        var vector = new float[8];
        long firstUser = Random.Shared.NextInt64(1L << 40, 1L << 50);
        for (int i = 0; i < removals; i++)
        {
            long user = firstUser + i;
            foreach (var host in hosts)
            {
                await host.Cache.GetAsync("ctr", user, vector);
                await host.Cache.FlushRegionalWritesAsync();
            }

            Volatile.Write(ref applied, 0);
            both = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            long removing = Stopwatch.GetTimestamp();
            await hosts[0].Cache.RemoveAsync(user);
            long returned = Stopwatch.GetTimestamp();
            if (await Task.WhenAny(both.Task, Task.Delay(TimeSpan.FromSeconds(5))) != both.Task)
            {
                lost++;
                continue;
            }

            lags.Add(Math.Max(0, Stopwatch.GetElapsedTime(returned, Volatile.Read(ref appliedAt)).TotalMilliseconds));
            foreach (var host in hosts.Skip(1))
            {
                var result = await host.Cache.GetAsync("ctr", user, vector);
                // Host 1's new inference reaches the store and may serve host 2: only a vector older than the removal
                // (stamps are whole milliseconds: 1 ms of slack) is a wrong answer.
                if (result.HasVector && result.Source != EmbeddingSource.Fresh && result.Age > Stopwatch.GetElapsedTime(removing) + TimeSpan.FromMilliseconds(1))
                {
                    wrong++;
                    Console.WriteLine($"round {i}: a {result.Source} answer {result.Age.TotalMilliseconds:F1} ms old after the removal was applied");
                }
            }
        }

        lags.Sort();
        double At(double q) => lags.Count == 0 ? double.NaN : lags[Math.Min(lags.Count - 1, (int)(q * lags.Count))];
        Console.WriteLine($"{connection}: {removals} removals on host 0; time from RemoveAsync returning to the last of hosts 1 and 2 applying it: p50 {At(0.5):F3} ms, p99 {At(0.99):F3} ms, max {(lags.Count == 0 ? double.NaN : lags[^1]):F3} ms (0 when applied before it returned); not applied within 5 s: {lost}; answers from an old vector afterwards: {wrong}.");
        foreach (var host in hosts)
        {
            await host.Cache.DisposeAsync();
            await host.Store.DisposeAsync();
        }
    }

    private static (EmbeddingCache Cache, RedisRegionalStore Store) Host(string connection)
    {
        var store = RedisRegionalStore.Connect(connection);
        var options = new ERCacheOptions
        {
            Models = { ["ctr"] = new ModelOptions { Dimensions = 8, Direct = { Ttl = TimeSpan.FromMinutes(1) }, Failover = { Ttl = TimeSpan.FromHours(1) } } },
            Regional = new RegionalOptions { Timeout = TimeSpan.FromMilliseconds(200) },
        };
        var tower = new InlineTower();
        var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = tower }, new EmbeddingCacheServices { RegionalStore = store });
        return (cache, store);
    }

    /// <summary>Writes the user id into every dimension, at once.</summary>
    private sealed class InlineTower : IEmbeddingInference
    {
        public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
        {
            for (int i = 0; i < batch.Count; i++)
            {
                batch.GetRow(i).Span.Fill(batch.UserIds.Span[i]);
            }

            return ValueTask.CompletedTask;
        }
    }
}
