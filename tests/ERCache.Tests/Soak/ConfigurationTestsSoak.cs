using ERCache.Models;
using ERCache.Inference;
using Microsoft.Extensions.Configuration;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Logging.Testing;

namespace ERCache.Tests;

/// <summary>The real-thread and real-clock tests of <see cref="ConfigurationTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class ConfigurationTestsSoak
{
    [Fact]
    public async Task Requests_during_reloads_always_see_one_consistent_policy()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", dimensions: 4, version: "v4")));
        var cache = host.Cache;
        using var stop = new CancellationTokenSource();
        int errors = 0, served = 0;

        // A reader sees version vN only with N-dimension vectors: a torn policy would mix them.
        var readers = Enumerable.Range(0, 4).Select(t => Task.Run(async () =>
        {
            var rng = new Random(t);
            while (!stop.IsCancellationRequested)
            {
                var policy = cache.GetPolicy("ctr");
                if (policy.Version != $"v{policy.Dimensions}")
                {
                    Interlocked.Increment(ref errors);
                }

                try
                {
                    var result = await cache.GetAsync("ctr", rng.Next(100), new float[policy.Dimensions]);
                    if (result.ModelVersion != $"v{policy.Dimensions}" && result.ModelVersion != policy.Version)
                    {
                        Interlocked.Increment(ref errors);
                    }

                    Interlocked.Increment(ref served);
                }
                catch (ArgumentException)
                {
                    // the policy changed between GetPolicy and GetAsync: expected, the length check caught it
                }
            }
        })).ToArray();

        // Each reload waits until the readers served another request after the previous one, so requests and reloads
        // overlap by construction rather than by luck.
        for (int i = 0; i < 50; i++)
        {
            int before = Volatile.Read(ref served);
            while (Volatile.Read(ref served) == before)
            {
                await Task.Yield();
            }

            int dims = 4 + (i % 3);
            host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", dimensions: dims, version: $"v{dims}")));
        }

        await stop.CancelAsync();
        await Task.WhenAll(readers);
        Assert.Equal(0, errors);
        Assert.True(served >= 50, $"only {served} requests were served during the reloads");
    }
}
