using System.Diagnostics;
using ERCache;
using ERCache.Inference;

// Builds a cache with one model (a 2 ms tower, 50 ms timeout, like a ranking service's) in a new process, optionally
// warms it up, then times its first requests, each for a new user. Prints one line per request:
// "<milliseconds> <source> <cause>". Usage: ERCache.ColdStartProbe [warm-up]
// With "jit-tiers" instead, runs the request paths a few times and prints every compilation of each library method
// (JitTierProbe).
if (args.Contains("jit-tiers"))
{
    await ERCache.ColdStartProbe.JitTierProbe.RunAsync();
    return;
}

var model = new ModelOptions { Dimensions = 64 };
model.Inference.Timeout = TimeSpan.FromMilliseconds(50);
model.Direct.Ttl = TimeSpan.FromMinutes(1);
model.Failover.Ttl = TimeSpan.FromHours(1);
var options = new ERCacheOptions { Models = { ["ctr"] = model } };
var tower = new DelegateInference(async (batch, cancellationToken) =>
{
    await Task.Delay(TimeSpan.FromMilliseconds(2), cancellationToken);
    batch.Destination.Span.Fill(0.5f);
});

using var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = tower });
if (args.Contains("warm-up"))
{
    await cache.WarmUpAsync();
}

var vector = new float[64];
for (long user = 1; user <= 5; user++)
{
    long started = Stopwatch.GetTimestamp();
    var result = await cache.GetAsync("ctr", user, vector);
    Console.WriteLine($"{Stopwatch.GetElapsedTime(started).TotalMilliseconds:F1} {result.Source} {result.FailureCause}");
}
