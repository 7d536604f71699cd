using System.Diagnostics;
using System.Globalization;

namespace ERCache.Tests;

/// <summary>
/// The deadline holds from a process's first request: each test starts a fresh process (ERCache.ColdStartProbe: a
/// 2 ms tower, a 50 ms timeout) and reads the first requests' sources: a request that missed its deadline would be a
/// fallback, so the sources are the check, not milliseconds. Real clock, bounded: five requests, in the soak collection.
/// </summary>
[Collection(Infrastructure.SoakDefinition.Name)]
public sealed class ColdStartTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_first_requests_of_a_new_process_are_fresh_within_the_timeout(bool warmUp)
    {
        var requests = await RunProbeAsync(warmUp ? "warm-up" : "");

        Assert.Equal(5, requests.Count);
        Assert.All(requests, r => Assert.Equal(("Fresh", "None"), (r.Source, r.Cause)));
    }

    private static async Task<List<(double Milliseconds, string Source, string Cause)>> RunProbeAsync(string arguments)
    {
        var probe = Path.Combine(AppContext.BaseDirectory, "ERCache.ColdStartProbe.dll");
        var start = new ProcessStartInfo("dotnet", $"\"{probe}\" {arguments}") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(60));
        var errors = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(process.ExitCode == 0, $"the probe failed: {errors}");
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' '))
            .Select(f => (double.Parse(f[0], CultureInfo.InvariantCulture), f[1], f[2]))
            .ToList();
    }
}
